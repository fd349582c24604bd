"""The text-to-speech system: ``TTSSystem`` and the schemas of a TTS recipe's configs.

A TTS recipe is a folder named ``tts`` (``egs/<corpus>/tts``): ``espnet-run`` runs it
with :class:`TTSSystem` (``just tts <corpus> <stages>``). Its ``measure`` stage scores
the synthesised speech with an ASR pack (``metrics.yaml: asr_pack``): the two systems
meet through a pack, never through each other's internals.
"""

from .configs import (
    ASRDecodeConfig,
    PhonemeTokenizerConfig,
    TTSDataConfig,
    TTSMetricsConfig,
    TTSPublishConfig,
)
from .mcd import mcd
from .measure import format_tts_scores
from .system import TTSSystem, write_split_durations

__all__ = [
    "ASRDecodeConfig",
    "PhonemeTokenizerConfig",
    "TTSDataConfig",
    "TTSMetricsConfig",
    "TTSPublishConfig",
    "TTSSystem",
    "format_tts_scores",
    "mcd",
    "write_split_durations",
]
