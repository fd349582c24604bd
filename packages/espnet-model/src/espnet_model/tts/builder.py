"""ESPnet2-style TTS config -> :class:`TTSModel` (the one place it becomes objects).

Example (YAML, as ESPnet2's ``egs2/*/tts1/conf/tuning/train_fastspeech2.yaml``)::

    tts: fastspeech2
    tts_conf: {adim: 256, aheads: 2, elayers: 4, eunits: 1024, dlayers: 4, dunits: 1024,
               positionwise_layer_type: conv1d, positionwise_conv_kernel_size: 3,
               duration_predictor_layers: 2, duration_predictor_chans: 256, use_masking: true}
    feats_extract: fbank          # ESPnet2's TTS LogMelFbank (log10 mel magnitude)
    feats_extract_conf: {fs: 22050, n_fft: 1024, hop_length: 256, win_length: null,
                         n_mels: 80, fmin: 80, fmax: 7600}
    normalize: global_mvn         # ESPnet2's default; null turns it off
    normalize_conf: {stats_file: exp/stats/feats_stats.npz}
    pitch_extract: null           # yin (torch); ESPnet2's dio needs pyworld
    energy_extract: null          # energy
    # pitch_normalize / energy_normalize: global_mvn with their own stats_file

``tts_conf`` keys left out take ESPnet2's defaults. Derived, never set: the vocabulary
size (``idim``), the mel size (``odim``, from ``n_mels``), ``num_features`` of the
normalisers, and whether the network predicts pitch / energy (from ``pitch_extract``
/ ``energy_extract``). Pitch and energy STFT settings default to ``feats_extract_conf``'s.
ESPnet2 options not implemented here (speakers, languages, GST, concat_after, shape
buckets) load when left at ESPnet2's default and are refused otherwise.
"""

from __future__ import annotations

import difflib
import inspect
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from espnet_model.normalize import GlobalMVN
from espnet_model.tts.fastspeech2 import FastSpeech2
from espnet_model.tts.features import Energy, LogMelFbank, Pitch
from espnet_model.tts.model import TTSModel

TTS_CHOICES: dict[str, type[FastSpeech2]] = {"fastspeech2": FastSpeech2}
FEATS_CHOICES = {"fbank": LogMelFbank}
PITCH_CHOICES = {"yin": Pitch}
ENERGY_CHOICES = {"energy": Energy}
NORMALIZE_CHOICES = {"global_mvn": GlobalMVN}
VALID_KEYS: tuple[str, ...] = (
    "tts", "tts_conf", "feats_extract", "feats_extract_conf", "normalize", "normalize_conf",
    "pitch_extract", "pitch_extract_conf", "pitch_normalize", "pitch_normalize_conf",
    "energy_extract", "energy_extract_conf", "energy_normalize", "energy_normalize_conf",
)  # fmt: skip
_DERIVED_TTS = ("idim", "odim", "use_pitch", "use_energy")
# ESPnet2 FastSpeech2 arguments not implemented here, with the defaults that are accepted
_ESPNET2_ONLY: dict[str, Any] = {
    "encoder_concat_after": False, "decoder_concat_after": False, "zero_triu": False,
    "spks": None, "langs": None, "spk_embed_dim": None, "spk_embed_integration_type": "add",
    "use_gst": False, "gst_tokens": 10, "gst_heads": 4, "gst_conv_layers": 6,
    "gst_conv_chans_list": (32, 32, 64, 64, 128, 128), "gst_conv_kernel_size": 3,
    "gst_conv_stride": 2, "gst_gru_layers": 1, "gst_gru_units": 128,
    "bucket_infer": None, "enc_buckets": None, "dec_buckets": None,
}  # fmt: skip
_STFT_KEYS = ("fs", "n_fft", "hop_length", "win_length", "window", "center")


def _closest(word: str, options: Iterable[str]) -> str:
    match = difflib.get_close_matches(word, list(options), n=1, cutoff=0.5)
    return f" (did you mean {match[0]!r}?)" if match else ""


def _conf(config: Mapping[str, Any], key: str) -> dict[str, Any]:
    conf = config.get(key) or {}
    if not isinstance(conf, Mapping):
        raise ValueError(f"{key} must be a mapping of keyword arguments, got {conf!r}")
    return dict(conf)


def _check_keys(key: str, factory: Callable[..., Any], conf: Mapping[str, Any], derived: tuple[str, ...] = ()) -> None:
    allowed = [p for p in inspect.signature(factory).parameters if p not in derived]
    for name in conf:
        if name in derived:
            raise ValueError(f"{key}.{name} is derived by the builder; remove it from the config")
        if name not in allowed:
            raise ValueError(
                f"{key}.{name} is not an argument of {factory.__name__}{_closest(name, allowed)}; "
                f"valid keys: {', '.join(allowed)}"
            )


def _choice(config: Mapping[str, Any], key: str, choices: Mapping[str, Any], default: str | None) -> str | None:
    name = config.get(key, default)
    if name is not None and name not in choices:
        options = ", ".join(repr(c) for c in (*choices, None))
        hint = ""
        if key == "pitch_extract" and name == "dio":
            hint = "; ESPnet2's dio needs pyworld, not a dependency here: use pitch_extract: yin"
        raise ValueError(f"{key}={name!r} is unknown{_closest(str(name), choices)}; valid choices: {options}{hint}")
    return name


def build_feats_extract(model_block: Mapping[str, Any]) -> LogMelFbank:
    """The log-mel extractor alone (``feats_extract`` + ``feats_extract_conf``), e.g. for
    collect_stats or an aligner over the same features."""
    _choice(model_block, "feats_extract", FEATS_CHOICES, "fbank")
    conf = _conf(model_block, "feats_extract_conf")
    _check_keys("feats_extract_conf", LogMelFbank, conf)
    return LogMelFbank(**conf)


def _variance_extract(
    model_block: Mapping[str, Any], key: str, choices: Mapping[str, Any], feats: LogMelFbank
) -> Pitch | Energy | None:
    name = _choice(model_block, key, choices, None)
    conf = _conf(model_block, f"{key}_conf")
    if name is None:
        if conf:
            raise ValueError(f"{key}_conf is set but {key} is null; set {key}: {next(iter(choices))} or remove {key}_conf")
        return None
    factory = choices[name]
    _check_keys(f"{key}_conf", factory, conf)
    own = {"fs": feats.fs, "n_fft": feats.n_fft, "hop_length": feats.hop_length, "win_length": feats.win_length,
           "window": feats.window_name, "center": feats.center}  # fmt: skip
    params = inspect.signature(factory).parameters
    for k in _STFT_KEYS:
        if k in params:
            conf.setdefault(k, own[k])
    if int(conf["hop_length"]) != feats.hop_length:
        raise ValueError(
            f"{key}_conf.hop_length={conf['hop_length']} differs from feats_extract_conf.hop_length="
            f"{feats.hop_length}: the frames must align; remove it (it defaults to the mel's)"
        )
    return factory(**conf)


def _normalizer(model_block: Mapping[str, Any], key: str, num_features: int, default: str | None) -> GlobalMVN | None:
    name = _choice(model_block, key, NORMALIZE_CHOICES, default)
    conf = _conf(model_block, f"{key}_conf")
    if name is None:
        return None
    _check_keys(f"{key}_conf", GlobalMVN, conf, ("num_features",))
    if "stats_file" not in conf:
        raise ValueError(
            f"{key}: global_mvn needs {key}_conf.stats_file (written by collect_stats); "
            f"set it, or {key}: null to train without normalisation"
        )
    return GlobalMVN(num_features=num_features, **conf)


def build_tts(model_block: Mapping[str, Any], vocab_size: int) -> TTSModel:
    """Build a :class:`TTSModel` from an ESPnet2-style TTS block (module docstring).

    ``vocab_size`` is the token list's length (``<blank>`` 0 ... ``<sos/eos>`` last).
    ``normalize_conf.stats_file: null`` (explicitly) builds identity statistics, for
    loading a checkpoint that holds them.

    Raises ``ValueError`` naming the key, the closest valid key and the valid ones.
    """
    if not isinstance(model_block, Mapping):
        raise ValueError(f"the TTS model block must be a mapping, got {type(model_block).__name__}")
    for key in model_block:
        if key not in VALID_KEYS:
            raise ValueError(
                f"unknown TTS model config key {key!r}{_closest(str(key), VALID_KEYS)}; valid keys: {', '.join(VALID_KEYS)}"
            )
    if vocab_size < 3:
        raise ValueError(f"vocab_size={vocab_size}: a TTS token list needs <blank>, <unk>, tokens and <sos/eos>")
    name = _choice(model_block, "tts", TTS_CHOICES, None)
    if name is None:
        raise ValueError(f"tts is required; valid choices: {', '.join(map(repr, TTS_CHOICES))}")
    feats = build_feats_extract(model_block)
    pitch = _variance_extract(model_block, "pitch_extract", PITCH_CHOICES, feats)
    energy = _variance_extract(model_block, "energy_extract", ENERGY_CHOICES, feats)
    tts_conf = _conf(model_block, "tts_conf")
    for key in [k for k in tts_conf if k in _ESPNET2_ONLY]:
        value = tts_conf.pop(key)
        default = _ESPNET2_ONLY[key]
        same = list(value) == list(default) if isinstance(default, tuple) and value is not None else value == default
        if not same:
            raise ValueError(
                f"tts_conf.{key}={value!r} is an ESPnet2 FastSpeech2 option not implemented here "
                f"(single speaker, no GST); remove it or set it to ESPnet2's default {default!r}"
            )
    _check_keys("tts_conf", TTS_CHOICES[name], tts_conf, _DERIVED_TTS)
    network = TTS_CHOICES[name](
        idim=vocab_size, odim=feats.n_mels, use_pitch=pitch is not None, use_energy=energy is not None, **tts_conf
    )
    for key, extract in (("pitch_normalize", pitch), ("energy_normalize", energy)):
        if extract is None and model_block.get(key) is not None:
            raise ValueError(f"{key} is set but {key.split('_')[0]}_extract is null; remove {key} or set the extractor")
    return TTSModel(
        network,
        feats,
        normalize=_normalizer(model_block, "normalize", feats.n_mels, "global_mvn"),
        pitch_extract=pitch,  # type: ignore[arg-type]
        pitch_normalize=_normalizer(model_block, "pitch_normalize", 1, None) if pitch is not None else None,
        energy_extract=energy,  # type: ignore[arg-type]
        energy_normalize=_normalizer(model_block, "energy_normalize", 1, None) if energy is not None else None,
    )
