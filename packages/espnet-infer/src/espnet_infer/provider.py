"""The provider: builds the per-worker objects once per worker (ESPnet3's design).

A worker is the local process, one process of a pool, or one MPI rank. Its
:class:`WorkerEnv` holds the loaded model (a :class:`Speech2Text`, with the language
model of ``decode.lm`` when there is one) and the dataset settings; the runner's ``forward`` consumes it for every shard the worker is given.
Building it is the expensive part (loading the weights), so it happens once.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch
from espnet_model.host_memory import keep_freed_host_memory

from .config import InferenceConfig
from .lm import LoadedLM, load_lm_folder
from .loading import LoadedModel, load_model_folder
from .speech2text import Speech2Text
from .streaming import StreamingDecoder

__all__ = ["InferenceProvider", "WorkerEnv"]


@dataclass
class WorkerEnv:
    """What one worker decodes with.

    Attributes:
        s2t: the model and its search.
        config: the run's configuration (batching: ``max_seconds``, ``max_batch_size``).
        rank: the worker's index (MPI rank, or 0).
    """

    s2t: Speech2Text
    config: InferenceConfig
    rank: int = 0


class InferenceProvider:
    """Builds a :class:`WorkerEnv` from an :class:`InferenceConfig`.

    Picklable (it holds only the config), so a process pool can call :meth:`build` in
    each worker.
    """

    def __init__(self, config: InferenceConfig) -> None:
        self.config = config

    def device_for_rank(self, rank: int) -> str:
        """``device: cuda`` spreads ranks over the visible GPUs; other values are kept."""
        device = self.config.device
        if device == "cuda" and torch.cuda.is_available():
            return f"cuda:{rank % torch.cuda.device_count()}"
        return device

    def threads(self, workers_on_node: int) -> int | None:
        """Torch threads of one worker: ``parallel.threads_per_worker``, or else the
        node's cores shared among its workers (None: torch's default, one worker)."""
        if self.config.parallel.threads_per_worker:
            return self.config.parallel.threads_per_worker
        if workers_on_node <= 1:
            return None
        cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
        return max(1, (cores or 1) // workers_on_node)

    def load_model(self, device: str = "cpu") -> LoadedModel:
        """The model folder ``model_dir``, loaded on ``device`` with the config's loading
        options (``trust_remote_code``): the one place the runner's model is loaded."""
        return load_model_folder(
            self.config.model_dir, device, trust_remote_code=self.config.trust_remote_code
        )

    def load_lm(self, device: str = "cpu") -> LoadedLM | None:
        """The language model ``decode.lm``, loaded on ``device`` (None when decoding
        fuses none: no ``lm``, or ``lm_weight: 0``).

        Raises:
            ValueError: ``decode.lm`` with ``method: ctc_greedy`` (only beam search fuses),
                or with ``decode.streaming.mode: ctc_greedy``.
        """
        decode = self.config.decode
        if decode.lm is None or decode.lm_weight == 0:
            return None
        if decode.streaming is not None and decode.streaming.mode == "ctc_greedy":
            raise ValueError(
                f"decode.lm ({decode.lm}) is fused by the streaming beam searches (joint, "
                "ctc_prefix), not by decode.streaming.mode: ctc_greedy; set one of them, or "
                "lm: null"
            )
        if decode.method != "beam_search":
            raise ValueError(
                f"decode.lm ({decode.lm}) needs decode.method: beam_search (greedy CTC cannot "
                "fuse a language model); set method: beam_search, or lm: null"
            )
        return load_lm_folder(decode.lm, device, trust_remote_code=self.config.trust_remote_code)

    def build(
        self, rank: int = 0, workers_on_node: int = 1, *, loaded: LoadedModel | None = None,
        lm: LoadedLM | None = None,
    ) -> WorkerEnv:
        """Set torch's threads and the allocator, load the model on the rank's device.

        Args:
            rank: the worker's index (picks its GPU with ``device: cuda``).
            workers_on_node: workers sharing this machine's cores (pool size, or the MPI
                ranks on this node).
            loaded: the model, already loaded by this process (the runner loads it
                before it touches any result); moved to the rank's device, not loaded
                again.
            lm: the language model ``decode.lm``, already loaded by this process (as
                ``loaded``); without it, the worker loads ``decode.lm`` itself.
        """
        threads = self.threads(workers_on_node)
        if threads:
            torch.set_num_threads(threads)
        if self.config.keep_host_memory:
            keep_freed_host_memory()
        device = self.device_for_rank(rank)
        if loaded is None:
            loaded = self.load_model(device)
        else:
            loaded.model.to(device)
        if lm is not None:
            lm.model.to(device)  # type: ignore[attr-defined]
        s2t = Speech2Text(loaded, decode=self.config.decode, device=device, lm=lm,
                          trust_remote_code=self.config.trust_remote_code)
        if self.config.decode.streaming is not None:
            return WorkerEnv(s2t=StreamingDecoder(s2t), config=self.config, rank=rank)  # type: ignore[arg-type]
        return WorkerEnv(s2t=s2t, config=self.config, rank=rank)
