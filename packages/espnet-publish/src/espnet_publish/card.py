"""The model card: ``README.md`` built with ``huggingface_hub``'s card classes.

``ModelCardData`` holds the front matter: ``language``, ``license``, ``library_name:
espnet-infer`` (the distribution that loads these folders; ``espnet`` would send Hub
users to ESPnet2 code, which cannot read this layout), the tags ``[espnet,
automatic-speech-recognition]`` (an LM: ``[espnet, language-model]``), ``datasets`` (Hub
ids of the training data, when given) and, when ``scores.json`` (an LM:
``perplexity.json``) is packed, the metric names plus a ``model-index`` of ``EvalResult``
s, one per test set and metric, so the Hub shows the scores on the model page. The body
says what the model is, how to install the loader (a compatible version range, see
:mod:`._release`) and load it with ``Speech2Text.from_pretrained``, and lists the scores.
``ModelCard`` checks that the front matter parses before the pack is written.

``scores.json`` shape (either orientation; values are percentages; other keys ignored)::

    {"test_clean": {"wer": 3.1, "cer": 1.2}, "test_other": {"wer": 7.9}}
    {"wer": {"test_clean": 3.1, "test_other": 7.9}, "cer": {"test_clean": 1.2}}

``perplexity.json`` (espnet-system's LM ``measure``): ``{"test": {"ppl": 41.2, ...}}``.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from huggingface_hub import EvalResult, ModelCard, ModelCardData

from ._release import compatible_requirement
from .errors import PublishError

__all__ = ["LIBRARY_NAME", "Scores", "build_model_card", "load_perplexity", "load_scores",
           "render_model_card"]

Scores = dict[str, dict[str, float]]
"""test set -> metric name ("wer" / "cer") -> value in percent."""

_METRICS = ("wer", "cer")
_PARAM_KEYS = ("num_params", "num_parameters", "parameters", "params")
LIBRARY_NAME = "espnet-infer"
"""The card's ``library_name``: the distribution whose ``Speech2Text`` loads the folder."""
_LOADER = "espnet-infer"  # what the usage snippet installs
_TAGS = ["espnet", "automatic-speech-recognition"]
_LM_TAGS = ["espnet", "language-model"]
_HUB_PREFIX = "hf://"
"""How ``espnet_infer.Speech2Text.from_pretrained`` tells a Hub repository from a path."""


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value)


def load_scores(path: Path) -> Scores:
    """Read ``scores.json`` into ``{test_set: {"wer": x, "cer": y}}`` (metric keys lower-cased)."""
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as e:
        raise PublishError(f"extra file scores.json ({path}) cannot be read as JSON: {e}") from e
    scores: Scores = {}
    if isinstance(data, dict):
        for key, inner in data.items():
            if not isinstance(inner, dict):
                continue
            if str(key).lower() in _METRICS:  # metric -> test set orientation
                for test_set, value in inner.items():
                    if (v := _number(value)) is not None:
                        scores.setdefault(str(test_set), {})[str(key).lower()] = v
            else:  # test set -> metric orientation
                for metric, value in inner.items():
                    if str(metric).lower() in _METRICS and (v := _number(value)) is not None:
                        scores.setdefault(str(key), {})[str(metric).lower()] = v
    if not scores:
        raise PublishError(
            f"extra file scores.json ({path}) has no WER/CER numbers. Expected e.g. "
            '{"test_clean": {"wer": 3.1, "cer": 1.2}} (values in percent); '
            "fix the file or leave it out of extra_files."
        )
    return scores


def load_perplexity(path: Path) -> dict[str, float]:
    """Read ``perplexity.json`` (an LM's ``measure``) into ``{set: perplexity}``."""
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as e:
        raise PublishError(f"extra file perplexity.json ({path}) cannot be read as JSON: {e}") from e
    out = {str(name): v for name, inner in (data.items() if isinstance(data, dict) else ())
           if isinstance(inner, dict) and (v := _number(inner.get("ppl"))) is not None}
    if not out:
        raise PublishError(
            f"extra file perplexity.json ({path}) has no perplexity. Expected e.g. "
            '{"test": {"ppl": 41.2}} (as espnet-system\'s LM measure writes it); fix the file '
            "or leave it out of extra_files."
        )
    return out


def _component(model: Mapping[str, Any], name: str) -> str | None:
    """ESPnet2 style: ``encoder: conformer`` + ``encoder_conf: {...}``; a mapping is also read."""
    value = model.get(name)
    if isinstance(value, Mapping):
        value = value.get("type") or value.get("class_path")
    return None if value is None else str(value)


def _encoder_size(model: Mapping[str, Any]) -> str | None:
    conf = model.get("encoder_conf")
    if not isinstance(conf, Mapping):
        return None
    parts = []
    if conf.get("num_blocks") is not None:
        parts.append(f"{conf['num_blocks']} blocks")
    if conf.get("output_size") is not None:
        parts.append(f"dim {conf['output_size']}")
    if conf.get("attention_heads") is not None:
        parts.append(f"{conf['attention_heads']} heads")
    return ", ".join(parts) or None


def _ctc_weight(model: Mapping[str, Any]) -> str | None:
    conf = model.get("model_conf")
    if isinstance(conf, Mapping) and conf.get("ctc_weight") is not None:
        return str(conf["ctc_weight"])
    return None


def _format_params(value: Any) -> str | None:
    n = _number(value)
    if n is None:
        return None if value is None else str(value)
    return f"{n / 1e6:.1f} M" if n >= 1e5 else f"{int(n):,}"


def _model_rows(config: Mapping[str, Any]) -> list[tuple[str, str]]:
    model = config.get("model") if isinstance(config.get("model"), Mapping) else {}
    training = config.get("training") if isinstance(config.get("training"), Mapping) else {}
    tokenizer = config.get("tokenizer") if isinstance(config.get("tokenizer"), Mapping) else {}
    rows: list[tuple[str, str | None]] = [
        ("Encoder", _component(model, "encoder")),
        ("Encoder size", _encoder_size(model)),
        ("Decoder", _component(model, "decoder")),
        ("Frontend", _component(model, "frontend")),
        ("CTC weight", _ctc_weight(model)),
        ("Tokenizer", str(tokenizer.get("type")) if tokenizer.get("type") else None),
        ("Vocabulary size", str(config["vocab_size"]) if "vocab_size" in config else None),
        ("Sample rate", f"{config['sample_rate']} Hz" if "sample_rate" in config else None),
        ("Parameters", next((_format_params(training[k]) for k in _PARAM_KEYS if k in training), None)),
    ]
    return [(k, v) for k, v in rows if v]


def card_data(*, model_name: str, license: str, language: str, scores: Scores,
              perplexity: Mapping[str, float] | None = None, datasets: Sequence[str] = (),
              is_lm: bool = False) -> ModelCardData:
    """The front matter. A test set is a split of ``datasets[0]`` when datasets are given
    (model-index ``dataset.type`` is then that Hub id), else its own dataset."""
    dataset = datasets[0] if datasets else None

    def result(test_set: str, metric: str, value: float, name: str, task: tuple[str, str]
               ) -> EvalResult:
        return EvalResult(
            task_type=task[0], task_name=task[1], dataset_type=dataset or test_set,
            dataset_name=test_set, dataset_split=test_set if dataset else None,
            metric_type=metric, metric_value=value, metric_name=name,
        )

    asr_task = ("automatic-speech-recognition", "Speech Recognition")
    results = [result(test_set, m, values[m], m.upper(), asr_task)
               for test_set, values in scores.items() for m in _METRICS if m in values]
    results += [result(name, "perplexity", value, "Perplexity",
                       ("text-generation", "Language Modelling"))
                for name, value in (perplexity or {}).items()]
    metrics = [m for m in _METRICS if any(m in s for s in scores.values())]
    return ModelCardData(
        language=[language],
        license=license,
        library_name=LIBRARY_NAME,
        tags=list(_LM_TAGS if is_lm else _TAGS),
        datasets=list(datasets) or None,
        pipeline_tag=None if is_lm else "automatic-speech-recognition",
        metrics=(metrics + (["perplexity"] if perplexity else [])) or None,
        model_name=model_name if results else None,
        eval_results=results or None,
    )


def _scores_table(scores: Scores) -> str:
    lines = ["| test set | WER (%) | CER (%) |", "| --- | ---: | ---: |"]
    for test_set, values in scores.items():
        cells = [f"{values[m]:.2f}" if m in values else "-" for m in _METRICS]
        lines.append(f"| {test_set} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def _perplexity_table(perplexity: Mapping[str, float]) -> str:
    lines = ["| set | perplexity |", "| --- | ---: |"]
    lines += [f"| {name} | {value:.2f} |" for name, value in perplexity.items()]
    return "\n".join(lines)


def _lm_rows(lm: Mapping[str, Any]) -> list[tuple[str, str]]:
    """Model-table rows of a packed language model (``{"dir", "config", "weight"}``)."""
    config = lm.get("config") if isinstance(lm.get("config"), Mapping) else {}
    block = config.get("model") if isinstance(config.get("model"), Mapping) else {}
    training = config.get("training") if isinstance(config.get("training"), Mapping) else {}
    kind = _component(block, "lm") or "seq_rnn"
    conf = block.get("lm_conf") if isinstance(block.get("lm_conf"), Mapping) else {}
    size = ", ".join(f"{k} {conf[k]}" for k in ("layer", "nlayers", "att_unit", "unit")
                     if conf.get(k) is not None)
    params = next((_format_params(training[k]) for k in _PARAM_KEYS if k in training), None)
    what = f"{kind} ({size})" if size else kind
    if params:
        what += f", {params} parameters"
    if lm.get("dir"):
        what += f", in `{lm['dir']}/`"
    rows = [("Language model", what)]
    if lm.get("weight") is not None:
        rows.append(("LM weight", str(lm["weight"])))
    return rows


def _install() -> str:
    """The install line: the loader at the versions that read packs written by this release."""
    return (
        f'```bash\npip install "{compatible_requirement(_LOADER)}"\n```\n\n'
        f"`{_LOADER}` (with `espnet-data` and `espnet-model`, which it requires) loads this "
        "folder; ESPnet2's `espnet` package does not read this layout.\n\n"
    )


def _lm_usage(source: str) -> str:
    """The usage snippet of a language model packed alone: fused into an ASR model's search."""
    return (
        _install()
        + "```python\n"
        "from espnet_infer import Speech2Text\n\n"
        f's2t = Speech2Text.from_pretrained("{_HUB_PREFIX}<owner>/<asr-model>", '
        f'lm="{_HUB_PREFIX}{source}", lm_weight=0.3)\n'
        'print(s2t.transcribe("speech.wav"))\n'
        "```\n\n"
        "Shallow fusion (`score = (1 - ctc_weight) * att + ctc_weight * ctc + lm_weight * lm`) "
        "needs an ASR model whose tokenizer is this model's (`tokenizer/`): another one is "
        "refused when it loads, naming both tokenizer files and sizes. `lm=` also takes a "
        "local folder (a copy of this one), and `espnet-infer`'s `inference.yaml` takes it "
        "as `decode.lm`. Every file loaded is checked against the sha256 digests in "
        "`meta.yaml` first.\n"
    )


def _usage(source: str, *, decode: Mapping[str, Any] | None,
           lm: Mapping[str, Any] | None = None) -> str:
    """The usage snippet: load from the Hub with espnet-infer alone, transcribe a file.

    ``decode``: the packed ``inference.yaml``'s decode block, written out as keyword
    arguments so that users decode as the scores were measured (``lm`` left out: a
    packed LM is fused by default). The source is written ``hf://<repo_id>``: a bare
    ``owner/name`` is a local path to espnet-infer.
    """
    options = {k: v for k, v in (decode or {}).items()
               if k not in ("nbest", "lm") and v is not None}
    if not lm:
        options.pop("lm_weight", None)
    args = "".join(f", {k}={v!r}" for k, v in options.items())
    note = "  # the decoding of inference.yaml" if options else ""
    return (
        _install()
        + "```python\n"
        "from espnet_infer import Speech2Text\n\n"
        f's2t = Speech2Text.from_pretrained("{_HUB_PREFIX}{source}"{args}){note}\n'
        'print(s2t.transcribe("speech.wav"))  # a path or a 1-D float32 waveform\n'
        "```\n\n"
        f"`from_pretrained` fetches `{_HUB_PREFIX}owner/name` (pin a revision with "
        f"`{_HUB_PREFIX}owner/name@<commit>`) with `huggingface_hub`; a plain string is a "
        "local folder only (a copy of this one works the same: "
        '`Speech2Text.from_pretrained("path/to/folder")`). Every file loaded is checked '
        "against the sha256 digests in `meta.yaml` first.\n"
        + (
            f"\nThe language model in `{lm.get('dir', 'lm')}/` is fused into the beam search "
            f"(shallow fusion, `lm_weight={lm.get('weight')}`) by default; "
            "`from_pretrained(..., lm=False)` decodes without it.\n"
            if lm else ""
        )
    )


def build_model_card(
    *,
    config: Mapping[str, Any],
    model_name: str,
    license: str,
    language: str,
    scores: Scores,
    repo_id: str | None = None,
    images: Sequence[str] = (),
    decode: Mapping[str, Any] | None = None,
    lm: Mapping[str, Any] | None = None,
    datasets: Sequence[str] = (),
    perplexity: Mapping[str, float] | None = None,
) -> ModelCard:
    """The ``huggingface_hub.ModelCard`` of a packed model (``str(card)`` is ``README.md``).

    ``images`` are folder-relative paths of training curves to show; ``decode`` (the
    packed ``inference.yaml``'s decode block) becomes the usage snippet's options;
    ``lm`` (``{"dir": "lm", "config": its config.yaml, "weight": lm_weight}``) describes
    a packed language model; ``datasets`` are Hub dataset ids of the training data (the
    scores' test sets are read as splits of the first); ``perplexity`` (``{set: ppl}``)
    are a language model's results.
    """
    is_lm = config.get("task") == "lm"  # a language model packed alone
    if is_lm:
        rows = _lm_rows({"config": config}) + [
            (k, v) for k, v in _model_rows(config) if k in ("Tokenizer", "Vocabulary size")]
        what = (f"An ESPnet language model ({language}) for shallow fusion with a speech "
                "recognition model that shares its tokenizer, packed with `espnet-publish` into "
                "a self-contained folder that `espnet-infer` loads directly.\n")
    else:
        rows = _model_rows(config) + (_lm_rows(lm) if lm else [])
        what = (f"An ESPnet automatic speech recognition model ({language}), packed with "
                "`espnet-publish` into a self-contained folder that `espnet-infer` loads "
                "directly.\n")
    training = config.get("training") if isinstance(config.get("training"), Mapping) else {}
    source = repo_id or f"<owner>/{model_name}"
    data = card_data(model_name=model_name, license=license, language=language, scores=scores,
                     perplexity=perplexity, datasets=datasets, is_lm=is_lm)
    parts = [
        f"# {model_name}\n",
        what,
        "## Model\n",
        "| | |\n| --- | --- |\n" + "\n".join(f"| {k} | {v} |" for k, v in rows) + "\n"
        if rows
        else "See `config.yaml` for the architecture.\n",
    ]
    if perplexity:
        parts += ["## Results\n", _perplexity_table(perplexity) + "\n"]
    if scores:
        parts += ["## Results\n", _scores_table(scores) + "\n"]
        if decode:
            settings = ", ".join(
                f"{k} {v}" for k, v in decode.items()
                if k != "nbest" and not (k in ("lm", "lm_weight") and not decode.get("lm"))
            )
            parts.append(f"Decoded as `inference.yaml` says: {settings}.\n")
    scalars = {k: v for k, v in training.items() if isinstance(v, str | int | float | bool)}
    if scalars:
        parts.append("## Training\n")
        parts.append("\n".join(f"- {k}: {v}" for k, v in scalars.items()) + "\n")
    if images:
        parts.append("### Training curves\n")
        parts.append("\n".join(f"![{Path(rel).stem}]({rel})" for rel in images) + "\n")
    parts += ["## How to use\n",
              _lm_usage(source) if is_lm else _usage(source, decode=decode, lm=lm)]
    if is_lm:
        parts += [
            "## Files\n",
            "`config.yaml` (`task: lm`, the language model block, tokenizer and training "
            "summary), `model.safetensors` (averaged weights), `tokenizer/` (the tokenizer it "
            "shares with its ASR model), and `meta.yaml` with the size and sha256 of every file "
            "and the Python and package versions that wrote them.\n",
        ]
    else:
        parts += [
            "## Files\n",
            "`config.yaml` (model, tokenizer and training summary), `model.safetensors` (averaged "
            "weights), `tokenizer/` (model and token list), `stats.npz` (feature statistics, when "
            "global MVN is used), `inference.yaml` (the resolved decoding config the results were "
            "measured with), `scores.json`, "
            + (f"`{lm.get('dir', 'lm')}/` (the language model: its own `config.yaml`, weights, "
               "tokenizer and `meta.yaml`), " if lm else "")
            + "and `meta.yaml` with the size and sha256 of every file "
            "and the Python and package versions that wrote them.\n",
        ]
    return ModelCard(f"---\n{data.to_yaml()}\n---\n" + "\n".join(parts))


def render_model_card(**kwargs: Any) -> str:
    """The full ``README.md`` text (front matter + body): ``str(build_model_card(...))``."""
    return str(build_model_card(**kwargs))
