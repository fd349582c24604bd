"""Speech2Text: waveforms in, transcripts out, from a model folder."""

from __future__ import annotations

import os
from collections.abc import Sequence

import numpy as np
import torch
from espnet_data.batching import pad_sequences

from .config import DecodeConfig
from .decode.beam_search import BeamSearch
from .decode.greedy import ctc_greedy_search
from .loading import LoadedModel, load_model_folder


class Speech2Text:
    """Transcribe audio with a trained model.

    Example::

        s2t = Speech2Text("exp/train/model", decode=DecodeConfig(method="ctc_greedy"))
        print(s2t.transcribe([audio])[0])   # audio: float32 numpy array at the model's rate
    """

    def __init__(
        self,
        model: str | os.PathLike[str] | LoadedModel,
        *,
        decode: DecodeConfig | None = None,
        device: str = "cpu",
    ) -> None:
        self.loaded = model if isinstance(model, LoadedModel) else load_model_folder(model, device)
        self.device = torch.device(device)
        self.decode = decode or DecodeConfig()
        self.model = self.loaded.model
        self.tokenizer = self.loaded.tokenizer
        self.search: BeamSearch | None = None
        if self.decode.method == "beam_search":
            ctc_weight = 1.0 if self.model.decoder is None else self.decode.ctc_weight
            self.search = BeamSearch(
                self.model,
                beam_size=self.decode.beam_size,
                ctc_weight=ctc_weight,
                penalty=self.decode.penalty,
                maxlenratio=self.decode.maxlenratio,
                minlenratio=self.decode.minlenratio,
            )

    @property
    def sample_rate(self) -> int:
        return self.loaded.sample_rate

    @torch.inference_mode()
    def token_ids(self, speech: torch.Tensor, lengths: torch.Tensor) -> list[list[int]]:
        """Best token ids for a padded batch ``(B, S)`` of waveforms."""
        enc, enc_lengths = self.model.encode(speech.to(self.device), lengths.to(self.device))
        if self.search is None:
            log_probs = self.model.ctc.log_softmax(enc)
            return ctc_greedy_search(log_probs, enc_lengths, blank_id=self.model.blank_id)
        return [hyps[0].tokens if hyps else [] for hyps in self.search(enc, enc_lengths)]

    def transcribe_batch(self, speech: torch.Tensor, lengths: torch.Tensor) -> list[str]:
        return [self.tokenizer.decode(ids) for ids in self.token_ids(speech, lengths)]

    def transcribe(self, audios: Sequence[np.ndarray]) -> list[str]:
        """Transcribe a list of float32 waveforms at :attr:`sample_rate`."""
        if not audios:
            return []
        speech = pad_sequences([np.asarray(a, dtype=np.float32) for a in audios], 0.0)
        lengths = torch.tensor([len(a) for a in audios], dtype=torch.long)
        return self.transcribe_batch(speech, lengths)
