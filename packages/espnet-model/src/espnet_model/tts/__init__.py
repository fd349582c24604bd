"""Text-to-speech models: FastSpeech2, a CTC aligner for durations, vocoders.

``build_tts(model_block, vocab_size)`` builds a :class:`TTSModel` (ESPnet2's FastSpeech2
with features computed inside from raw speech); ``build_aligner`` a small CTC model
whose :func:`~espnet_model.tts.aligner.durations` give frames per token;
:class:`GriffinLim` and :class:`HiFiGAN` (``build_hifigan``) turn the log-mel into audio,
and ``check_vocoder`` refuses a vocoder made for other audio settings.
"""

from espnet_model.optimization import OptimizationStep
from espnet_model.tts.aligner import CTCAligner, build_aligner, durations
from espnet_model.tts.builder import build_feats_extract, build_tts
from espnet_model.tts.griffin_lim import GriffinLim
from espnet_model.tts.hifigan import HiFiGAN, build_hifigan
from espnet_model.tts.model import TTSModel
from espnet_model.tts.vocoder import check_vocoder

__all__ = [
    "CTCAligner",
    "GriffinLim",
    "HiFiGAN",
    "OptimizationStep",
    "TTSModel",
    "build_aligner",
    "build_feats_extract",
    "build_hifigan",
    "build_tts",
    "check_vocoder",
    "durations",
]
