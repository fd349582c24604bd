# Front-end of the toolkit. `just --list` explains each recipe.

set positional-arguments

export UV_PYTHON_DOWNLOADS := "never"

# Run stages of a recipe: `just asr mini all`, `just asr librispeech train infer`
asr corpus *stages="all":
    uv run --locked espnet-run egs/{{corpus}}/asr --stages {{stages}}

# Run stages of a language-model recipe: `just lm mini all` (after `just asr mini create_dataset train_tokenizer`: it shares their data and tokenizer)
lm corpus *stages="all":
    uv run --locked espnet-run egs/{{corpus}}/lm --stages {{stages}}

# Run stages of a text-to-speech recipe: `just tts mini all` (measure scores the speech with the ASR pack: run `just asr mini all` first)
tts corpus *stages="all":
    uv run --locked espnet-run egs/{{corpus}}/tts --stages {{stages}}

# List the stages of a recipe and the config each one reads
stages corpus system="asr":
    uv run --locked espnet-run egs/{{corpus}}/{{system}} --list

# Decode on N MPI ranks: `just infer-mpi 2 egs/mini/asr` (its conf/inference.yaml) or `just infer-mpi 4 inference.yaml`
infer-mpi n target *args:
    #!/usr/bin/env bash
    set -euo pipefail
    if [ -d "$2" ]; then cd "$2"; config=conf/inference.yaml; else config="$(realpath "$2")"; fi
    uv run --locked --project "{{justfile_directory()}}" mpiexec -n "$1" espnet-infer --config "$config" --parallel.backend mpi "${@:3}"

# Run the test suite (pass pytest arguments after it: `just test tests/espnet_data -x`, `just test -k "cli and not slow"`; each argument reaches pytest as typed)
test *args:
    uv run --locked pytest -n 2 --dist loadgroup "$@"

# Run a benchmark: `just bench NAME` runs benchmarks/NAME.py, writes benchmarks/out/NAME.json
bench name="all":
    uv run --locked python benchmarks/run.py {{name}}

# Install each package alone in a fresh venv and import it (as CI does)
isolation:
    bash .ci/isolation.sh

# Build wheels and sdists of the six packages into dist/ and check their metadata (one version, compatible ranges, no exact pins)
dist:
    uv run --locked python .ci/dist.py build

# Lint the code with ruff
lint:
    uv run --locked ruff check packages tests benchmarks
