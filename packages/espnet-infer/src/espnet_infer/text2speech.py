"""Text2Speech: text in, a waveform out, from a TTS model folder or a packed TTS model.

Usage::

    from espnet_infer import Text2Speech
    tts = Text2Speech.from_pretrained("exp/tts/model")             # Griffin-Lim vocoder
    tts = Text2Speech.from_pretrained("exp/packed", vocoder="exp/vocoder/model")  # HiFi-GAN
    out = tts("The birch canoe slid on the smooth planks.")
    out["wav"], tts.fs          # 1-D float tensor, its sample rate
    out["feat_gen"]             # (frames, n_mels) log-mel, denormalised
    out["duration"]             # frames per phoneme token

The folder is the one ``espnet-train`` exports with ``task: tts`` (``config.yaml``,
``model.pt``, ``tokenizer/`` with the phoneme tokenizer) or its pack (``pack_model``:
``model.safetensors`` and ``meta.yaml``, whose sha256 digests are checked first, as
for :class:`~espnet_infer.Speech2Text`). ``vocoder=None`` turns mels into audio with
Griffin-Lim, set up from the model's own ``feats_extract_conf``; a vocoder folder
(``task: vocoder``: HiFi-GAN from ``espnet-train``) must have the model's sample rate
and mel settings, or it is refused at load.

Text goes through the phonemizer of the tokenizer (espeak-ng). Empty text, and
characters the front-end cannot speak, raise ``ValueError`` naming them. Text longer
than ``max_chunk_chars`` is cut at sentence ends, then commas, then spaces
(``espnet_data.tts.text.chunk_text``); each chunk is synthesised on its own and the
audio joined with ``pause_seconds`` of silence. Text longer than ``max_text_chars`` is
refused. Named after ESPnet2's ``espnet2.bin.tts_inference.Text2Speech``. Nothing here
imports Lightning.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from .hub import resolve_model_dir
from .loading import _load_weights, _manifest_digests, _read_yaml, _verify, _weights_file

__all__ = ["LoadedTTS", "Text2Speech", "load_tts_folder", "load_vocoder"]

log = logging.getLogger(__name__)

TOKENIZER_DIR = "tokenizer"
MAX_CHUNK_CHARS = 200
MAX_TEXT_CHARS = 20_000


@dataclass
class LoadedTTS:
    """An acoustic model ready to synthesise, with its phoneme tokenizer.

    ``files``: the files it was built from (config, weights, tokenizer), whose contents
    batched synthesis records to tell stale results.
    """

    model: torch.nn.Module
    tokenizer: Any
    config: dict[str, Any]
    path: Path
    files: tuple[Path, ...] = ()

    @property
    def sample_rate(self) -> int:
        return int(self.config["sample_rate"])

    @property
    def feats_extract_conf(self) -> dict[str, Any]:
        return dict(self.config["model"].get("feats_extract_conf") or {})


def _checked_config(folder: Path, task: str, verify: bool, what: str) -> tuple[dict[str, Any], dict[str, str] | None]:
    if not folder.is_dir():
        raise FileNotFoundError(f"{what} folder {folder} does not exist (train one with "
                                f"espnet-train task: {task}, or unpack a packed model there)")
    config_file = folder / "config.yaml"
    if not config_file.is_file():
        raise FileNotFoundError(f"{config_file} not found: {folder} is not a {what} folder")
    digests = _manifest_digests(folder) if verify else None
    if digests is not None:
        _verify(folder, "config.yaml", digests)
    config = _read_yaml(config_file)
    if not isinstance(config, dict) or not isinstance(config.get("model"), dict):
        raise ValueError(f"{config_file} must be a mapping with a model block; re-export the folder")
    found = config.get("task", "asr")
    if found != task:
        hint = {"asr": "an ASR model folder goes to Speech2Text",
                "lm": "a language model folder goes to Speech2Text(lm=...)",
                "tts": "an acoustic model folder is Text2Speech's first argument",
                "vocoder": "a vocoder folder goes to Text2Speech(vocoder=...)"}.get(found, "")
        raise ValueError(f"{config_file} describes a {found!r} model (task: {found}), not a "
                         f"{task!r} one{': ' + hint if hint else ''}")
    if "sample_rate" not in config:
        raise KeyError(f"{config_file} lacks sample_rate; re-export the folder")
    return config, digests


def _state(folder: Path, digests: dict[str, str] | None) -> tuple[Path, dict[str, torch.Tensor]]:
    weights = _weights_file(folder)
    if digests is not None:
        _verify(folder, weights.name, digests)
    return weights, _load_weights(weights)


def _load_state(model: torch.nn.Module, state: dict[str, torch.Tensor], weights: Path) -> None:
    try:
        model.load_state_dict(state)
    except RuntimeError as err:
        detail = "; ".join(line.strip() for line in str(err).splitlines()[:3])
        raise ValueError(f"{weights} does not fit the model its config.yaml describes ({detail})") from None


def load_tts_folder(path: str | os.PathLike[str], device: str | torch.device = "cpu", *,
                    verify: bool = True) -> LoadedTTS:
    """Build the acoustic model of a TTS folder (``task: tts``), load weights and tokenizer.

    Raises:
        FileNotFoundError: no such folder, or no ``config.yaml`` / weights / tokens in it.
        ValueError: another task's folder, a file that does not match ``meta.yaml``,
            weights or a tokenizer that do not fit the model.
    """
    from espnet_data.tts.tokens import PhonemeTokenizer
    from espnet_model.tts import build_tts

    folder = Path(path)
    config, digests = _checked_config(folder, "tts", verify, "TTS model")
    tokenizer_dir = folder / TOKENIZER_DIR
    token_files = sorted(p for p in tokenizer_dir.glob("*") if p.is_file()) if tokenizer_dir.is_dir() else []
    if not (tokenizer_dir / "tokens.txt").is_file():
        raise FileNotFoundError(f"{tokenizer_dir / 'tokens.txt'} not found: the TTS folder lacks "
                                "its phoneme tokenizer; re-export or re-pack it")
    if digests is not None:
        for file in token_files:
            _verify(folder, file.relative_to(folder).as_posix(), digests)
    tokenizer = PhonemeTokenizer.load(tokenizer_dir)
    vocab = len(tokenizer)
    if "vocab_size" in config and int(config["vocab_size"]) != vocab:
        raise ValueError(f"{folder / 'config.yaml'}: vocab_size {config['vocab_size']} != its "
                         f"tokenizer's {vocab}: the tokenizer files do not belong to this model")
    block = dict(config["model"])
    for key in ("normalize", "pitch_normalize", "energy_normalize"):  # statistics: in the weights
        if block.get(key, "global_mvn" if key == "normalize" else None) == "global_mvn":
            block[f"{key}_conf"] = {**(block.get(f"{key}_conf") or {}), "stats_file": None}
    model = build_tts(block, vocab_size=vocab)
    weights, state = _state(folder, digests)
    _load_state(model, state, weights)
    model.to(device).eval()
    return LoadedTTS(model=model, tokenizer=tokenizer, config=config, path=folder,
                     files=(folder / "config.yaml", weights, *token_files))


# -- vocoders --------------------------------------------------------------------------


class _Vocoder:
    """A mel -> waveform callable with the sample rate it produces."""

    def __init__(self, module: Any, sample_rate: int, name: str, files: tuple[Path, ...] = ()) -> None:
        self.module, self.sample_rate, self.name, self.files = module, sample_rate, name, files

    @torch.inference_mode()
    def __call__(self, mel: torch.Tensor) -> torch.Tensor:
        run = getattr(self.module, "inference", None) or self.module
        wav = run(mel)
        if isinstance(wav, dict):
            wav = wav["wav"]
        return wav.reshape(-1).float()

    def to(self, device: str | torch.device) -> _Vocoder:
        if isinstance(self.module, torch.nn.Module):
            self.module.to(device)
        return self


def _mel_settings(conf: dict[str, Any]) -> dict[str, Any]:
    keys = ("fs", "n_fft", "hop_length", "n_mels", "fmin", "fmax")
    return {k: conf.get(k) for k in keys if k in conf}


def load_vocoder(vocoder: str | os.PathLike[str] | None, tts: LoadedTTS, device: str | torch.device = "cpu",
                 *, verify: bool = True, griffin_lim_iters: int = 32) -> _Vocoder:
    """Griffin-Lim from the model's mel settings (``vocoder=None``) or a vocoder folder.

    Raises:
        ValueError: the vocoder's sample rate (or mel settings: hop, FFT size, mels,
            band) differ from the acoustic model's: its audio would be wrong.
    """
    if vocoder is None:
        from espnet_model.tts.griffin_lim import GriffinLim

        module = GriffinLim(tts.feats_extract_conf, n_iter=griffin_lim_iters)
        return _Vocoder(module, tts.sample_rate, f"griffin_lim (n_iter={griffin_lim_iters})").to(device)
    from espnet_model.tts.hifigan import build_hifigan

    folder = resolve_model_dir(vocoder) if isinstance(vocoder, str) else Path(vocoder)
    config, digests = _checked_config(folder, "vocoder", verify, "vocoder")
    rate = int(config["sample_rate"])
    if rate != tts.sample_rate:
        raise ValueError(
            f"sample-rate mismatch: the vocoder {folder} makes {rate} Hz audio, the acoustic model "
            f"{tts.path} was trained on {tts.sample_rate} Hz mels; use a vocoder trained at "
            f"{tts.sample_rate} Hz (or vocoder=None for Griffin-Lim)"
        )
    theirs = _mel_settings(dict(config["model"].get("feats_extract_conf") or {}))
    ours = _mel_settings(tts.feats_extract_conf)
    differ = sorted(k for k in theirs.keys() & ours.keys() if theirs[k] != ours[k])
    if differ:
        raise ValueError(
            f"mel settings differ between the vocoder {folder} and the acoustic model {tts.path}: "
            + ", ".join(f"{k} {theirs[k]} != {ours[k]}" for k in differ)
            + "; train the vocoder with the acoustic model's feats_extract_conf"
        )
    module = build_hifigan(config["model"])
    weights, state = _state(folder, digests)
    _load_state(module, state, weights)
    module.eval()
    return _Vocoder(module, rate, f"vocoder {folder}", files=(folder / "config.yaml", weights)).to(device)


# -- Text2Speech -----------------------------------------------------------------------


class Text2Speech:
    """Synthesise speech from text with a loaded acoustic model and a vocoder.

    Args:
        loaded: the acoustic model (:func:`load_tts_folder`).
        vocoder: a vocoder (:func:`load_vocoder`); None: Griffin-Lim.
        device: where the models run.
        max_chunk_chars: longer text is cut into chunks of at most this many characters
            (sentence ends, then commas, then spaces), each synthesised on its own.
        max_text_chars: longer text is refused (``ValueError``).
        pause_seconds: silence put between the chunks of a long text.
    """

    def __init__(self, loaded: LoadedTTS, vocoder: _Vocoder | None = None, *, device: str = "cpu",
                 max_chunk_chars: int = MAX_CHUNK_CHARS, max_text_chars: int = MAX_TEXT_CHARS,
                 pause_seconds: float = 0.15) -> None:
        self.loaded = loaded
        self.model = loaded.model.to(device).eval()
        self.tokenizer = loaded.tokenizer
        self.device = device
        self.vocoder = vocoder if vocoder is not None else load_vocoder(None, loaded, device)
        if self.vocoder.sample_rate != loaded.sample_rate:
            raise ValueError(f"sample-rate mismatch: vocoder {self.vocoder.sample_rate} Hz, acoustic "
                             f"model {loaded.sample_rate} Hz")
        self.max_chunk_chars = max_chunk_chars
        self.max_text_chars = max_text_chars
        self.pause_seconds = pause_seconds

    @classmethod
    def from_pretrained(cls, name_or_path: str | os.PathLike[str], *, vocoder: str | os.PathLike[str] | None = None,
                        device: str = "cpu", verify: bool = True, revision: str | None = None,
                        cache_dir: str | os.PathLike[str] | None = None, griffin_lim_iters: int = 32,
                        **options: Any) -> Text2Speech:
        """Load a TTS model folder, a packed one, or ``hf://owner/name[@revision]``.

        ``vocoder``: None for Griffin-Lim (from the model's mel settings), or a vocoder
        folder (``task: vocoder``), refused when its sample rate or mel settings differ.
        ``options``: ``max_chunk_chars``, ``max_text_chars``, ``pause_seconds``.
        """
        folder = resolve_model_dir(name_or_path, revision=revision, cache_dir=cache_dir)
        loaded = load_tts_folder(folder, device, verify=verify)
        voc = load_vocoder(vocoder, loaded, device, verify=verify, griffin_lim_iters=griffin_lim_iters)
        return cls(loaded, voc, device=device, **options)

    @property
    def fs(self) -> int:
        """The sample rate of the audio made (ESPnet2's name)."""
        return self.loaded.sample_rate

    sample_rate = fs

    def chunks(self, text: str) -> list[str]:
        """``text`` cut into the pieces that are synthesised one by one.

        Raises:
            ValueError: empty text, or longer than ``max_text_chars``.
        """
        from espnet_data.tts.text import chunk_text

        if not isinstance(text, str):
            raise TypeError(f"text must be a str, got {type(text).__name__}")
        if not text.strip():
            raise ValueError("empty text: there is nothing to synthesise; pass a sentence")
        if len(text) > self.max_text_chars:
            raise ValueError(
                f"text of {len(text)} characters is longer than max_text_chars="
                f"{self.max_text_chars}; synthesise it in parts (or raise max_text_chars)"
            )
        return chunk_text(text, self.max_chunk_chars)

    def token_ids(self, text: str) -> list[int]:
        """Phoneme ids of one chunk; errors name the text."""
        ids = list(self.tokenizer.encode(text))
        if not ids:
            raise ValueError(f"{text!r} gives no phoneme tokens; pass words to speak")
        return ids

    @torch.inference_mode()
    def acoustic(self, ids: Sequence[Sequence[int]]) -> list[dict[str, torch.Tensor]]:
        """``feat_gen`` (frames, n_mels) and ``duration`` for each id sequence (one batch)."""
        batch = getattr(self.model, "inference_batch", None)
        if batch is None or len(ids) == 1:
            return [self._one(seq) for seq in ids]
        lengths = torch.tensor([len(s) for s in ids], dtype=torch.long)
        text = torch.zeros(len(ids), int(lengths.max()), dtype=torch.long)
        for i, seq in enumerate(ids):
            text[i, : len(seq)] = torch.as_tensor(seq)
        out = batch(text.to(self.device), lengths.to(self.device))
        return _unbatch(out, len(ids))

    def _one(self, seq: Sequence[int]) -> dict[str, torch.Tensor]:
        out = self.model.inference(torch.as_tensor(list(seq), dtype=torch.long, device=self.device))
        return {"feat_gen": out["feat_gen"], "duration": out["duration"]}

    def _join(self, parts: list[dict[str, torch.Tensor]]) -> dict[str, torch.Tensor]:
        wavs = [self.vocoder(p["feat_gen"]).cpu() for p in parts]
        if len(parts) == 1:
            return {"wav": wavs[0], "feat_gen": parts[0]["feat_gen"].cpu(),
                    "duration": parts[0]["duration"].cpu()}
        pause = torch.zeros(int(self.pause_seconds * self.fs))
        joined: list[torch.Tensor] = []
        for i, wav in enumerate(wavs):
            joined += [pause, wav] if i else [wav]
        return {"wav": torch.cat(joined), "feat_gen": torch.cat([p["feat_gen"].cpu() for p in parts]),
                "duration": torch.cat([p["duration"].cpu() for p in parts])}

    def __call__(self, text: str) -> dict[str, torch.Tensor]:
        """Synthesise ``text``: ``{"wav", "feat_gen", "duration"}`` (CPU tensors)."""
        return self.synthesize_batch([text])[0]

    def synthesize_batch(self, texts: Sequence[str]) -> list[dict[str, torch.Tensor]]:
        """Several texts, their chunks through the acoustic model in one batch."""
        pieces = [self.chunks(t) for t in texts]
        flat = [self.token_ids(c) for p in pieces for c in p]
        acoustic = self.acoustic(flat)
        out, i = [], 0
        for p in pieces:
            out.append(self._join(acoustic[i : i + len(p)]))
            i += len(p)
        return out


def _unbatch(out: Any, n: int) -> list[dict[str, torch.Tensor]]:
    """``inference_batch``'s result as one dict per utterance (a list of dicts, or a dict
    of padded tensors with ``feat_gen_lengths`` / ``duration_lengths``)."""
    if isinstance(out, list | tuple):
        return [{"feat_gen": o["feat_gen"], "duration": o["duration"]} for o in out]
    feats, durs = out["feat_gen"], out["duration"]
    if isinstance(feats, list | tuple):
        return [{"feat_gen": feats[i], "duration": durs[i]} for i in range(n)]
    flen = out.get("feat_gen_lengths")
    dlen = out.get("duration_lengths")
    return [{"feat_gen": feats[i, : int(flen[i])] if flen is not None else feats[i],
             "duration": durs[i, : int(dlen[i])] if dlen is not None else durs[i]} for i in range(n)]
