"""espnet-infer: decoding, sharded runners (local, processes, MPI) and scoring."""

from .config import DecodeConfig, InferenceConfig, ParallelConfig
from .decode.beam_search import BeamSearch, Hypothesis
from .decode.greedy import ctc_greedy_search
from .loading import LoadedModel, load_model_folder
from .runner import run_inference
from .speech2text import Speech2Text

__version__ = "0.1.0"

__all__ = [
    "BeamSearch",
    "DecodeConfig",
    "Hypothesis",
    "InferenceConfig",
    "LoadedModel",
    "ParallelConfig",
    "Speech2Text",
    "ctc_greedy_search",
    "load_model_folder",
    "run_inference",
]
