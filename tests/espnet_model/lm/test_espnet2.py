"""ESPnet2 LM compatibility: config translation, strict loading, ESPnet2's outputs.

``tests/data/espnet2_lm_tiny`` holds tiny ESPnet2 LM experiments written by ESPnet2
itself (``make_espnet2_lm_fixture.py`` in the peer venv) with ESPnet2's outputs: NLL,
loss, logits and ``batch_score`` at every step of fixed prefixes. The ``peer`` test
regenerates them with the peer venv (``benchmarks/.peer``) and is skipped without it.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest
import torch
import yaml
from espnet_model import count_parameters
from espnet_model.lm import LanguageModel, build_lm, load_espnet2_lm
from espnet_model.lm.espnet2 import (
    espnet2_lm_defaults,
    find_espnet2_lm_files,
    translate_espnet2_lm_config,
)

ROOT = Path(__file__).resolve().parents[3]
FIXTURE = ROOT / "tests" / "data" / "espnet2_lm_tiny"
PEER = ROOT / "benchmarks" / ".peer" / "bin" / "python"
SCRIPT = ROOT / "tests" / "espnet_model" / "make_espnet2_lm_fixture.py"
NAMES = ("transformer", "transformer_sinusoidal", "seq_rnn")
ATOL = 1e-5


def check_outputs(folder: Path) -> None:
    """Our model loaded from ``folder`` reproduces ESPnet2's ``expected.pt``."""
    model = load_espnet2_lm(folder).model
    exp = torch.load(folder / "expected.pt", weights_only=True)
    assert not model.training
    with torch.no_grad():
        nll, counts = model.token_nll(exp["text"], exp["text_lengths"])
        sums, _ = model.nll(exp["text"], exp["text_lengths"])
        loss, stats, weight = model(text=exp["text"], text_lengths=exp["text_lengths"])
        logits = model.lm(exp["x"])
        ys, state, steps = exp["prefixes"], None, []
        for length in range(1, ys.size(1) + 1):
            if length == exp["reorder_after"] + 1:
                ys, state = ys[exp["perm"]], state.select(exp["perm"])
            logp, state = model.batch_score(ys[:, :length], state)
            steps.append(logp)
    torch.testing.assert_close(nll, exp["nll"], atol=ATOL, rtol=0)
    torch.testing.assert_close(sums, exp["nll"].sum(1), atol=ATOL, rtol=0)
    assert torch.equal(counts, exp["nll_lengths"])
    torch.testing.assert_close(loss, exp["loss"].reshape(()), atol=ATOL, rtol=0)
    assert weight == int(exp["weight"])
    torch.testing.assert_close(logits, exp["logits"], atol=ATOL, rtol=0)
    torch.testing.assert_close(torch.stack(steps), exp["batch_logp"], atol=ATOL, rtol=0)
    assert count_parameters(model) == exp["num_params"]


@pytest.mark.parametrize("name", NAMES)
def test_fixture_outputs_match_espnet2(name: str) -> None:
    check_outputs(FIXTURE / name)


@pytest.mark.parametrize("name", NAMES)
def test_checkpoint_loads_strictly_into_the_translated_model(name: str) -> None:
    state = torch.load(FIXTURE / name / "valid.loss.ave.pth", weights_only=True)
    loaded = load_espnet2_lm(FIXTURE / name)
    assert loaded.token_list[-1] == "<sos/eos>" and loaded.model.vocab_size == 10
    assert loaded.model_file.name == "valid.loss.ave.pth" and loaded.token_type == "bpe"
    rebuilt = build_lm(loaded.lm_config, vocab_size=10)
    rebuilt.load_state_dict(state, strict=True)
    assert {k: v.shape for k, v in rebuilt.state_dict().items()} == {
        k: v.shape for k, v in state.items()
    }


def test_defaults_are_espnet2s() -> None:
    espnet2 = json.loads((FIXTURE / "espnet2_defaults.json").read_text())
    assert espnet2_lm_defaults("transformer") == espnet2["transformer"]
    assert espnet2_lm_defaults("seq_rnn") == espnet2["seq_rnn"]
    translated = translate_espnet2_lm_config({"lm": "transformer", "lm_conf": {"layer": 16}})
    assert translated["lm_conf"] == {**espnet2["transformer"], "layer": 16}
    assert translated["model_conf"] == espnet2["model"]
    assert translate_espnet2_lm_config({})["lm"] == "seq_rnn"  # ESPnet2's default


@pytest.mark.parametrize(
    ("config", "message"),
    [
        ({"lm": "transformer_opt"}, "lm='transformer_opt' is not supported"),
        ({"model": "lm_multitask"}, "model='lm_multitask' is not supported"),
        ({"lm": "transformer", "lm_conf": {"rnn_type": "lstm"}}, "lm_conf.rnn_type='lstm' is not supported"),
        ({"model_conf": {"sos_syms": ["<sos>"]}}, r"model_conf.sos_syms=\['<sos>'\] is not supported"),
    ],
)  # fmt: skip
def test_unsupported_config_raises_naming_the_key(config: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        translate_espnet2_lm_config(config)


def test_finds_packs_exp_folders_and_token_files(tmp_path: Path) -> None:
    src = FIXTURE / "transformer"
    # A model-zoo pack: meta.yaml names the LM config and weights.
    exp = tmp_path / "pack" / "exp" / "lm_train_lm_transformer_char"
    exp.mkdir(parents=True)
    config = yaml.safe_load((src / "config.yaml").read_text())
    (tmp_path / "pack" / "tokens.txt").write_text("\n".join(config["token_list"]) + "\n")
    config["token_list"] = "tokens.txt"  # a path, relative to the pack
    (exp / "config.yaml").write_text(yaml.safe_dump(config))
    shutil.copy(src / "valid.loss.ave.pth", exp / "lm.pth")
    meta = {
        "yaml_files": {"lm_train_config": "exp/lm_train_lm_transformer_char/config.yaml"},
        "files": {"lm_file": "exp/lm_train_lm_transformer_char/lm.pth"},
    }
    (tmp_path / "pack" / "meta.yaml").write_text(yaml.safe_dump(meta))
    assert find_espnet2_lm_files(tmp_path / "pack") == (exp / "config.yaml", exp / "lm.pth")
    loaded = load_espnet2_lm(tmp_path / "pack")
    assert loaded.token_list[-1] == "<sos/eos>" and isinstance(loaded.model, LanguageModel)
    (tmp_path / "pack" / "meta.yaml").unlink()
    assert find_espnet2_lm_files(tmp_path / "pack") == (exp / "config.yaml", exp / "lm.pth")
    assert find_espnet2_lm_files(exp / "config.yaml")[1] == exp / "lm.pth"
    # checkpoint.pth ({"model": ...}) loads with model_file=.
    torch.save({"model": torch.load(exp / "lm.pth", weights_only=True)}, exp / "checkpoint.pth")
    load_espnet2_lm(exp, model_file=exp / "checkpoint.pth")
    (exp / "lm.pth").unlink()
    with pytest.raises(FileNotFoundError, match="no ESPnet2 LM checkpoint next to config.yaml"):
        load_espnet2_lm(exp)


def test_a_checkpoint_of_another_model_raises_naming_keys(tmp_path: Path) -> None:
    shutil.copy(FIXTURE / "transformer" / "config.yaml", tmp_path / "config.yaml")
    shutil.copy(FIXTURE / "seq_rnn" / "valid.loss.ave.pth", tmp_path / "valid.loss.ave.pth")
    with pytest.raises(
        RuntimeError, match=r"does not match .*missing \['lm.embed.weight', 'lm.encoder.embed"
    ):
        load_espnet2_lm(tmp_path)
    shutil.copy(
        FIXTURE / "transformer_sinusoidal" / "valid.loss.ave.pth", tmp_path / "valid.loss.ave.pth"
    )
    with pytest.raises(RuntimeError, match="(?s)does not match .*size mismatch for lm.embed.weight"):
        load_espnet2_lm(tmp_path)


# --- against the peer venv (ESPnet2 itself); skipped when benchmarks/.peer is absent ---

peer = pytest.mark.skipif(not PEER.exists(), reason="ESPnet2 peer venv benchmarks/.peer absent")


@peer
@pytest.mark.slow
def test_peer_writes_the_committed_fixture_and_its_outputs_match(tmp_path: Path) -> None:
    out = subprocess.run(
        [str(PEER), str(SCRIPT), str(tmp_path), "--count-librispeech"],
        capture_output=True,
        text=True,
        check=False,
        timeout=300,
    )
    assert out.returncode == 0, out.stderr[-3000:]
    for name in NAMES:
        check_outputs(tmp_path / name)
        for file in ("config.yaml", "valid.loss.ave.pth"):
            assert (tmp_path / name / file).read_bytes() == (FIXTURE / name / file).read_bytes(), (
                f"regenerate tests/data/espnet2_lm_tiny ({name}/{file} differs)"
            )
    for file in ("espnet2_defaults.json", "counts.json"):
        assert (tmp_path / file).read_text() == (FIXTURE / file).read_text(), file
