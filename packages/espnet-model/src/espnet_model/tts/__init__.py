"""Text-to-speech models: FastSpeech2, a CTC aligner for durations, vocoders."""

from espnet_model.optimization import OptimizationStep
from espnet_model.tts.builder import build_tts
from espnet_model.tts.model import TTSModel

__all__ = ["OptimizationStep", "TTSModel", "build_tts"]
