"""espnet-system: systems of named stages wired from the other packages."""

from .asr import ASRSystem
from .base import BaseSystem
from .configs import DataPrepConfig, MetricsConfig, PublishConfig, TokenizerConfig
from .inputs import Reads
from .lm import LMSystem
from .parse import parse_config
from .recipe import load_system
from .stages import StageError, resolve_stages
from .tts import TTSSystem

__version__ = "0.1.0"

__all__ = [
    "ASRSystem",
    "BaseSystem",
    "DataPrepConfig",
    "LMSystem",
    "MetricsConfig",
    "PublishConfig",
    "Reads",
    "StageError",
    "TTSSystem",
    "TokenizerConfig",
    "load_system",
    "parse_config",
    "resolve_stages",
]
