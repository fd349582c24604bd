"""espnet-infer: decoding, speech synthesis, sharded runners (local, processes, MPI) and scoring."""

from .config import DecodeConfig, InferenceConfig, ParallelConfig
from .decode.beam_search import BeamSearch, Hypothesis
from .decode.greedy import ctc_greedy_search
from .lm import LoadedLM, load_lm_folder
from .loading import LoadedModel, load_model_folder
from .provider import InferenceProvider, WorkerEnv
from .runner import decode_shard, run_inference
from .speech2text import Speech2Text, Transcript
from .streaming import Speech2TextStreaming
from .text2speech import Text2Speech

__version__ = "0.1.0"

__all__ = [
    "BeamSearch",
    "DecodeConfig",
    "Hypothesis",
    "InferenceConfig",
    "InferenceProvider",
    "LoadedLM",
    "LoadedModel",
    "ParallelConfig",
    "Speech2Text",
    "Speech2TextStreaming",
    "Text2Speech",
    "Transcript",
    "WorkerEnv",
    "ctc_greedy_search",
    "decode_shard",
    "load_lm_folder",
    "load_model_folder",
    "run_inference",
]
