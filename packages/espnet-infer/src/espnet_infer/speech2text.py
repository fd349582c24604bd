"""Speech2Text: audio in, transcripts out, from a model folder or a Hub repository.

Usage::

    from espnet_infer import Speech2Text
    s2t = Speech2Text.from_pretrained("exp/train/model")       # or a packed folder,
    s2t = Speech2Text.from_pretrained("hf://owner/repo")       # or a Hub repository
    print(s2t.transcribe("utt.flac"))                          # a path or a waveform
    print(s2t.transcribe_batch(["a.flac", "b.flac"]))
    for t in s2t.transcribe_nbest("utt.flac"):                 # with decode nbest > 1
        print(t.score, t.scores, t.text)                       # scores: att, ctc, lm
    s2t = Speech2Text.from_pretrained("exp/train/model", lm="exp/lm/model", lm_weight=0.6)
    s2t = Speech2Text.from_pretrained("packed", lm=False)      # a pack's own LM left out
    s2t = Speech2Text.from_pretrained("hf://espnet/<an ESPnet2 model>")  # ESPnet2 zoo layout

A plain string is a path on disk, never a Hub repository: ``hf://owner/repo`` (or
``hf://owner/repo@revision``) fetches. A packed folder is checked against its
``meta.yaml`` digests, and a model block naming foreign code (``class_path``) is refused
unless ``trust_remote_code=True`` (see :mod:`espnet_infer.loading`).

Shallow fusion with a language model (:mod:`espnet_infer.lm`): ``lm=`` (or
``decode.lm``) names an LM folder, which must use the ASR model's tokenizer. A pack
that carries an LM (``pack_model(..., lm_dir=...)``: ``lm/``, named by the pack's
``inference.yaml`` ``decode.lm``) is decoded with it by :meth:`Speech2Text.from_pretrained`
unless ``lm=False``.

Named after ESPnet2's ``espnet2.bin.asr_inference.Speech2Text`` so its users find it.
Nothing here imports Lightning.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, overload

import numpy as np
import torch
from espnet_data import read_audio
from espnet_data.audio import resample
from espnet_data.batching import pad_sequences
from espnet_model import ASRModel
from espnet_model.frozen import FrozenConformerEncoder, freeze_encoder

from .config import DecodeConfig
from .decode.beam_search import BeamSearch
from .decode.greedy import ctc_greedy_search
from .decode.protocol import LMLike
from .espnet2_pack import ESPNET2_DECODE, find_espnet2, load_espnet2_model
from .hub import HUB_PREFIX, resolve_model_dir
from .lm import LoadedLM, check_lm_tokenizer, load_lm_folder
from .loading import LoadedModel, _manifest_digests, _read_yaml, _verify, load_model_folder

__all__ = ["AudioInput", "LMSource", "Speech2Text", "Transcript"]

AudioInput = str | os.PathLike[str] | np.ndarray | torch.Tensor
"""An audio file path, or a 1-D float waveform at the model's sample rate."""

LMSource = str | os.PathLike[str] | LoadedLM | LMLike | bool | None
"""A language model: an LM folder, a loaded one (:func:`~espnet_infer.lm.load_lm_folder`),
a model object (``espnet_model.lm.LanguageModel``), ``False`` for none, or None for
``decode.lm`` (and, in ``from_pretrained``, the pack's own LM)."""


@dataclass(frozen=True)
class Transcript:
    """One hypothesis of one utterance.

    Attributes:
        text: the detokenised transcript.
        tokens: its token ids.
        score: the ranking score (beam search: the weighted total; greedy CTC: the
            best path's log-probability).
        scores: unweighted parts, ``att`` and/or ``ctc`` and, with a language model,
            ``lm`` (beam search); ``ctc_path`` (greedy).
    """

    text: str
    tokens: list[int]
    score: float
    scores: dict[str, float] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {"text": self.text, "tokens": self.tokens, "score": self.score,
                "scores": dict(self.scores)}


def _finite(wave: np.ndarray, what: str) -> np.ndarray:
    """``wave`` itself, or ValueError when some of its samples are NaN or infinite."""
    bad = int(np.count_nonzero(~np.isfinite(wave)))
    if bad:
        raise ValueError(
            f"{what} has {bad} non-finite sample(s) (NaN or inf) of {wave.size}: nothing "
            "sensible can be transcribed from it. Fix the audio or its conversion, e.g. "
            "np.nan_to_num(wave) if the gaps are known to be silence"
        )
    return wave


class Speech2Text:
    """Transcribe audio with a trained model.

    Args:
        model: a model folder (``config.yaml`` + ``model.pt`` + tokenizer) or a
            :class:`LoadedModel`.
        decode: the search (:class:`DecodeConfig`); default joint CTC/attention beam search.
        device: ``cpu``, ``cuda``, ``cuda:1``...
        trust_remote_code: let the folder's model block name code outside espnet_model
            (``class_path``), which is imported and run. Only for a model you trust.
        verify: check the folder's files against its ``meta.yaml`` sha256 digests (when
            it has one) before loading; ``False`` skips the check.
        lm: a language model for shallow fusion (:data:`LMSource`): an LM folder (loaded
            with ``trust_remote_code`` and ``verify`` as above), a :class:`LoadedLM`, or
            an LM object; ``False``: none; None (default): ``decode.lm``. A folder or
            :class:`LoadedLM` must have the ASR model's tokens (``TokenizerMismatchError``
            names both tokenizer files and sizes). Needs ``decode.method: beam_search``.
        lm_weight: overrides ``decode.lm_weight``; ``0`` decodes without the LM (and
            does not load it).

    Attributes: ``loaded`` (the ASR model), ``lm`` (the fused LM folder as loaded, or
    None), ``lm_model`` (the fused LM network, also when passed as an object),
    ``decode`` (the settings in use: ``decode.lm`` is the LM's folder, None for an LM
    object or no LM), ``search``.
    """

    def __init__(
        self,
        model: str | os.PathLike[str] | LoadedModel,
        *,
        decode: DecodeConfig | None = None,
        device: str = "cpu",
        trust_remote_code: bool = False,
        verify: bool = True,
        lm: LMSource = None,
        lm_weight: float | None = None,
    ) -> None:
        self.loaded = (
            model
            if isinstance(model, LoadedModel)
            else load_model_folder(model, device, trust_remote_code=trust_remote_code, verify=verify)
        )
        self.device = torch.device(device)
        self.decode = decode or DecodeConfig()
        if lm_weight is not None:
            self.decode = replace(self.decode, lm_weight=float(lm_weight))
        self.lm: LoadedLM | None = None
        self.lm_model = self._fused_lm(lm, trust_remote_code=trust_remote_code, verify=verify)
        self.model = self.loaded.model
        self.tokenizer = self.loaded.tokenizer
        self.frozen_encoder: FrozenConformerEncoder | None = None
        if self.decode.fuse_encoder and isinstance(self.model, ASRModel):
            self.frozen_encoder = freeze_encoder(self.model.encoder, self.model.ctc)
        self.search: BeamSearch | None = None
        if self.decode.method == "beam_search":
            ctc_weight = self.decode.ctc_weight
            if self.model.decoder is None:
                ctc_weight = 1.0
            elif self.model.ctc is None:
                ctc_weight = 0.0
            self.search = BeamSearch(
                self.model,
                beam_size=self.decode.beam_size,
                ctc_weight=ctc_weight,
                penalty=self.decode.penalty,
                maxlenratio=self.decode.maxlenratio,
                minlenratio=self.decode.minlenratio,
                nbest=self.decode.nbest,
                lm=self.lm_model,
                lm_weight=self.decode.lm_weight if self.lm_model is not None else 0.0,
            )
        elif self.decode.nbest != 1:
            raise ValueError(
                f"decode.nbest={self.decode.nbest} needs decode.method: beam_search "
                "(greedy CTC gives one hypothesis); set nbest: 1 or method: beam_search"
            )

    def _fused_lm(
        self, lm: LMSource, *, trust_remote_code: bool, verify: bool
    ) -> LMLike | None:
        """The LM to fuse (a folder loaded and checked against the ASR tokenizer, into
        :attr:`lm`), or None."""
        if lm is True:
            raise TypeError("lm=True is ambiguous: pass an LM folder, or None for decode.lm "
                            "(and a pack's own LM), or False for none")
        if lm is False:
            self.decode = replace(self.decode, lm=None)
            return None
        if lm is None:
            lm = self.decode.lm
        elif isinstance(lm, str | os.PathLike | LoadedLM):
            self.decode = replace(self.decode, lm=os.fspath(lm.path if isinstance(lm, LoadedLM)
                                                            else lm))
        else:
            self.decode = replace(self.decode, lm=None)  # an object: no folder to name
        if lm is None or self.decode.lm_weight == 0:
            return None
        if self.decode.method != "beam_search":
            what = self.decode.lm or type(lm).__name__
            raise ValueError(
                f"a language model ({what}) needs decode.method: beam_search (greedy CTC "
                "cannot fuse one); set method: beam_search, or lm: null"
            )
        if isinstance(lm, str | os.PathLike):
            lm = load_lm_folder(lm, self.device, trust_remote_code=trust_remote_code,
                                verify=verify)
        if isinstance(lm, LoadedLM):
            check_lm_tokenizer(lm, self.loaded)
            self.lm = lm
            return lm.model
        if not isinstance(lm, LMLike):
            raise TypeError(
                f"lm must be an LM folder, a LoadedLM or a language model with vocab_size "
                f"and batch_score(ys, state), got {type(lm).__name__}"
            )
        return lm  # its vocabulary size is checked by BeamSearch; its tokens cannot be

    @property
    def uses_lm(self) -> bool:
        """Whether the beam search fuses a language model."""
        return self.search is not None and self.search.uses_lm

    @classmethod
    def from_pretrained(
        cls,
        name_or_path: str | os.PathLike[str],
        *,
        decode: DecodeConfig | None = None,
        lm: LMSource = None,
        device: str = "cpu",
        revision: str | None = None,
        cache_dir: str | os.PathLike[str] | None = None,
        trust_remote_code: bool = False,
        verify: bool = True,
        **decode_options: Any,
    ) -> Speech2Text:
        """Load a model folder, a packed model (``pack_model``), a local Hub snapshot, or
        a Hugging Face repository ``hf://owner/name[@revision]`` (fetched with
        ``huggingface_hub``). A plain string is a local path only: a missing one is an
        error, never a Hub download.

        ``decode_options`` override fields of ``decode``, e.g.
        ``Speech2Text.from_pretrained(path, beam_size=4, ctc_weight=0.3, nbest=2)``.
        ``trust_remote_code`` and ``verify``: as for :class:`Speech2Text`.

        A pack that carries a language model (its ``inference.yaml`` names
        ``decode.lm: lm``, a folder inside the pack) is decoded with it by default, at
        the pack's ``lm_weight`` unless ``lm_weight`` (or ``decode``) is given;
        ``lm=False`` (or ``lm_weight=0``) leaves it out, ``lm=<folder>`` uses another
        one. Greedy CTC (``method="ctc_greedy"``) never loads it.

        An ESPnet2 model-zoo pack, ESPnet2 Hub repository or ESPnet2 ASR experiment
        folder (:mod:`espnet_infer.espnet2_pack`) decodes with ESPnet2 ``Speech2Text``'s
        defaults (:data:`~espnet_infer.espnet2_pack.ESPNET2_DECODE`: beam 20,
        ``ctc_weight`` 0.5 and, when its ``meta.yaml`` names an LM, that LM at
        ``lm_weight`` 1.0) unless ``decode`` or ``decode_options`` say otherwise.
        """
        folder = resolve_model_dir(name_or_path, revision=revision, cache_dir=cache_dir)
        espnet2 = find_espnet2(folder)
        config = decode or (DecodeConfig() if espnet2 is None else ESPNET2_DECODE)
        if decode_options:
            unknown = sorted(set(decode_options) - set(DecodeConfig.__dataclass_fields__))
            if unknown:
                raise TypeError(
                    f"unknown decoding option(s) {unknown}; choose from "
                    f"{sorted(DecodeConfig.__dataclass_fields__)}"
                )
            config = replace(config, **decode_options)
        if espnet2 is not None:  # its LM (meta.yaml: lm_train_config) at ESPnet2's lm_weight
            if (lm is None and config.lm is None and espnet2.lm_config is not None
                    and config.method == "beam_search"):
                config = replace(config, lm=str(folder))
            return cls(load_espnet2_model(espnet2, device), decode=config, device=device,
                       trust_remote_code=trust_remote_code, verify=verify, lm=lm)
        if lm is None and config.lm is None and config.method == "beam_search":
            packed_lm, packed_weight = packed_lm_settings(folder, verify=verify)
            if packed_lm is not None:
                config = replace(config, lm=packed_lm)
                if packed_weight is not None and decode is None and "lm_weight" not in decode_options:
                    config = replace(config, lm_weight=packed_weight)
        return cls(folder, decode=config, device=device, trust_remote_code=trust_remote_code,
                   verify=verify, lm=lm)

    @property
    def sample_rate(self) -> int:
        return self.loaded.sample_rate

    # -- padded tensors ---------------------------------------------------------------

    @torch.inference_mode()
    def encode(self, speech: torch.Tensor, lengths: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Encoder output ``(B, T', D)`` and lengths of a padded batch ``(B, S)`` of waveforms,
        through the frozen encoder when there is one (``decode.fuse_encoder``)."""
        speech, lengths = speech.to(self.device), lengths.to(self.device)
        if self.frozen_encoder is None:
            return self.model.encode(speech, lengths)
        return self.frozen_encoder(*self.model.features(speech, lengths))

    @torch.inference_mode()
    def nbest_padded(self, speech: torch.Tensor, lengths: torch.Tensor) -> list[list[Transcript]]:
        """Hypotheses, best first, for a padded batch ``(B, S)`` of waveforms."""
        enc, enc_lengths = self.encode(speech, lengths)
        if self.search is None:
            log_probs = self.model.ctc.log_softmax(enc)
            ids = ctc_greedy_search(log_probs, enc_lengths, blank_id=self.model.blank_id)
            valid = torch.arange(log_probs.shape[1], device=log_probs.device)[None, :] < (
                enc_lengths.to(log_probs.device)[:, None]
            )
            path = (log_probs.max(dim=-1).values * valid).sum(dim=1).tolist()
            return [
                [Transcript(self.tokenizer.decode(t), t, s, {"ctc_path": s})]
                for t, s in zip(ids, path, strict=True)
            ]
        return [
            [Transcript(self.tokenizer.decode(h.tokens), h.tokens, h.score, dict(h.scores))
             for h in hyps]
            for hyps in self.search(enc, enc_lengths)
        ]

    def token_ids(self, speech: torch.Tensor, lengths: torch.Tensor) -> list[list[int]]:
        """Best token ids for a padded batch ``(B, S)`` of waveforms."""
        return [hyps[0].tokens if hyps else [] for hyps in self.nbest_padded(speech, lengths)]

    def transcribe_padded(self, speech: torch.Tensor, lengths: torch.Tensor) -> list[str]:
        """Best transcript for a padded batch ``(B, S)`` of waveforms."""
        return [hyps[0].text if hyps else "" for hyps in self.nbest_padded(speech, lengths)]

    # -- paths and waveforms ----------------------------------------------------------

    def load_audio(self, audio: AudioInput) -> np.ndarray:
        """A float32 mono waveform at :attr:`sample_rate` from a path or a waveform.

        Raises:
            ValueError: not 1-D, empty, or with NaN / infinite samples (the model would
                turn them into confident nonsense).
        """
        if isinstance(audio, str | os.PathLike):
            wave, rate = read_audio(audio)
            return _finite(resample(wave, rate, self.sample_rate), f"audio file {audio}")
        if isinstance(audio, torch.Tensor):
            audio = audio.detach().cpu().numpy()
        with np.errstate(over="ignore", invalid="ignore"):  # too loud -> inf, refused below
            wave = np.asarray(audio, dtype=np.float32)
        if wave.ndim != 1:
            raise ValueError(
                f"a waveform must be 1-D (samples,), got shape {wave.shape}; pass one "
                "channel, e.g. audio[:, 0], or a list of waveforms to transcribe_batch"
            )
        if wave.size == 0:
            raise ValueError("empty waveform (0 samples): nothing to transcribe")
        return _finite(wave, "the waveform")

    def transcribe_batch_nbest(self, audios: Sequence[AudioInput]) -> list[list[Transcript]]:
        """Hypotheses, best first, for each of ``audios`` (decoded as one batch)."""
        if not audios:
            return []
        waves = []
        for i, audio in enumerate(audios):
            try:
                waves.append(self.load_audio(audio))
            except ValueError as err:
                if len(audios) == 1:
                    raise
                raise ValueError(f"audios[{i}]: {err}") from err
        speech = pad_sequences(waves, 0.0)
        lengths = torch.tensor([len(w) for w in waves], dtype=torch.long)
        return self.nbest_padded(speech, lengths)

    def transcribe_batch(self, audios: Sequence[AudioInput]) -> list[str]:
        """The best transcript of each of ``audios`` (paths or waveforms), one batch."""
        return [hyps[0].text if hyps else "" for hyps in self.transcribe_batch_nbest(audios)]

    def transcribe_nbest(self, audio: AudioInput) -> list[Transcript]:
        """Up to ``decode.nbest`` hypotheses of one utterance, best first."""
        return self.transcribe_batch_nbest([audio])[0]

    def __call__(self, speech: AudioInput) -> list[tuple[str, list[str], list[int], Transcript]]:
        """ESPnet2's form: n-best ``(text, tokens, token_ids, hypothesis)`` tuples, so that
        ``text, *_ = s2t(speech)[0]`` carries over from ``espnet2.bin.asr_inference``.

        ``tokens`` are the detokenised single tokens.
        """
        return [
            (h.text, [self.tokenizer.decode([i]) for i in h.tokens], list(h.tokens), h)
            for h in self.transcribe_nbest(speech)
        ]

    @overload
    def transcribe(self, audio: AudioInput) -> str: ...

    @overload
    def transcribe(self, audio: list[Any] | tuple[Any, ...]) -> list[str]: ...

    def transcribe(self, audio: AudioInput | list[Any] | tuple[Any, ...]) -> str | list[str]:
        """The best transcript of one path or waveform.

        A list or tuple of them is decoded as :meth:`transcribe_batch` and gives a list
        (the form of earlier releases).
        """
        if isinstance(audio, list | tuple):
            return self.transcribe_batch(audio)
        hyps = self.transcribe_nbest(audio)
        return hyps[0].text if hyps else ""


def packed_lm_settings(folder: str | os.PathLike[str], *, verify: bool = True) -> tuple[str | None, float | None]:
    """``(LM folder, lm_weight)`` a pack's ``inference.yaml`` names (``decode.lm``,
    relative to the pack, and ``decode.lm_weight``); ``(None, None)`` when it names none.

    With ``verify`` and a ``meta.yaml``, ``inference.yaml`` is checked against it first.
    ``decode.lm`` must stay inside the pack (no absolute path, no ``..``).
    """
    root = Path(folder)
    path = root / "inference.yaml"
    if not path.is_file():
        return None, None
    digests = _manifest_digests(root) if verify else None
    if digests is not None:
        _verify(root, path.name, digests)
    doc = _read_yaml(path)
    decode = doc.get("decode") if isinstance(doc, dict) else None
    if not isinstance(decode, dict) or not decode.get("lm"):
        return None, None
    rel = str(decode["lm"])
    if rel.startswith(HUB_PREFIX):
        return rel, None if decode.get("lm_weight") is None else float(decode["lm_weight"])
    if Path(rel).is_absolute() or ".." in Path(rel).parts:
        raise ValueError(
            f"{path}: decode.lm = {rel!r} points outside the packed folder; a pack's LM is "
            "a folder inside it (pack_model(..., lm_dir=...) writes decode.lm: lm). Re-pack "
            "it, or pass lm=<folder> (or lm=False)"
        )
    weight = decode.get("lm_weight")
    return str(root / rel), None if weight is None else float(weight)
