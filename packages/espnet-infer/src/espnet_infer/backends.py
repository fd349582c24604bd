"""Where the runner runs: this process, a process pool, or MPI ranks.

Every backend gets the same three things: the provider (builds a worker's objects
once per worker), the task list, and the runner's ``forward(env, task, progress)``.
Only the split of the tasks differs:

- ``local``: this process builds one worker and runs every task.
- ``processes``: a spawn-based pool; each process builds its worker in the pool's
  initializer and sends its per-batch counts through a queue to the parent, which
  shows the progress of all workers.
- ``mpi``: rank ``r`` takes tasks ``r, r + N, ...``; every rank sends its per-batch
  counts to rank 0, which shows the progress of all ranks and gathers the figures.

The runner hands the tasks over largest first: the pool's last tasks, and each rank's,
are then its smallest. The runner has loaded the model once already (to check it
before touching any result); ``local`` and MPI rank 0 reuse that copy.

A pool worker is killed with its parent (Linux), so a worker of a killed run cannot
write a shard result after another run has taken the output folder's lock. Under MPI,
the launcher (``mpiexec``) ends every rank when one dies.
"""

from __future__ import annotations

import os
import signal
import sys
from collections.abc import Callable
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from queue import Empty
from typing import Any, TypeVar

import torch

from .lm import LoadedLM
from .loading import LoadedModel
from .progress import Progress, ProgressFn
from .provider import InferenceProvider, WorkerEnv

__all__ = ["Forward", "run_local", "run_mpi", "run_processes", "tasks_from_rank0"]

Forward = Callable[[WorkerEnv, Any, ProgressFn | None], dict[str, Any]]
"""The runner's forward: (worker env, task, progress callback) -> figures of the task."""

_PROGRESS_TAG = 77

_Task = TypeVar("_Task")


def tasks_from_rank0(comm: Any, rank: int, prepare: Callable[[], list[_Task]]) -> list[_Task]:
    """The pending tasks, listed by rank 0 alone and sent to every rank.

    Rank 0 (the only process without MPI: ``comm`` None) calls ``prepare``; the other
    ranks take its list, since a rank that looked itself could see shards another rank
    has just finished, shift its ``todo[rank::size]`` slice and leave one out. When
    ``prepare`` raises, rank 0 sends the error to the ranks waiting for the list (each
    then raises ``RuntimeError`` naming it) and raises it itself.
    """
    todo: list[_Task] = []
    if rank == 0:
        try:
            todo = prepare()
        except Exception as err:
            if comm is not None:  # the other ranks wait for the task list: stop them
                comm.bcast(f"{type(err).__name__}: {err}", root=0)
            raise
    if comm is not None:
        shared = comm.bcast(todo, root=0)
        if isinstance(shared, str):
            raise RuntimeError(f"rank 0 could not start the run: {shared}")
        todo = shared
    return todo


def _update(progress: Progress | None) -> ProgressFn | None:
    return None if progress is None else progress.update


def run_local(
    provider: InferenceProvider, tasks: list[Any], forward: Forward, *,
    progress: Progress | None = None, loaded: LoadedModel | None = None,
    lm: LoadedLM | None = None,
) -> list[dict[str, Any]]:
    """Build one worker here (with ``loaded`` and ``lm``, the models this process has
    loaded already) and run every task in order."""
    env = provider.build(0, loaded=loaded, lm=lm)
    return [forward(env, task, _update(progress)) for task in tasks]


# Per-process state of a pool worker, set once by the initializer: its env and the
# queue its per-batch counts go to.
_POOL_ENV: WorkerEnv | None = None
_POOL_QUEUE: Any = None


_PR_SET_PDEATHSIG = 1  # from <linux/prctl.h>


def _die_with_parent(parent: int) -> None:
    """Have this process killed when ``parent`` (the run that holds the output folder's
    lock) exits, however it exits; exit now if it is gone already. Linux only
    (``prctl(PR_SET_PDEATHSIG)``); elsewhere only the check that it is still there."""
    if sys.platform.startswith("linux"):
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        if libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0) != 0:
            raise OSError(ctypes.get_errno(), "prctl(PR_SET_PDEATHSIG) failed")
    if os.getppid() != parent:  # it died before the signal was armed
        os._exit(1)


def _pool_init(provider: InferenceProvider, queue: Any, workers: int, parent: int) -> None:
    global _POOL_ENV, _POOL_QUEUE
    _die_with_parent(parent)
    _POOL_ENV, _POOL_QUEUE = provider.build(0, workers_on_node=workers), queue


def _pool_report(utterances: int, audio_seconds: float) -> None:
    _POOL_QUEUE.put((utterances, audio_seconds))


def _pool_run(forward: Forward, task: Any) -> dict[str, Any]:
    if _POOL_ENV is None:
        raise RuntimeError("pool worker used before its initializer built the model")
    return forward(_POOL_ENV, task, _pool_report)


def _drain(queue: Any, progress: Progress | None) -> None:
    while True:
        try:
            utterances, audio_seconds = queue.get_nowait()
        except Empty:
            return
        if progress is not None:
            progress.update(utterances, audio_seconds)


def run_processes(
    provider: InferenceProvider, tasks: list[Any], forward: Forward, *,
    num_workers: int, progress: Progress | None = None,
) -> list[dict[str, Any]]:
    """Run the tasks on a spawn-based pool of ``num_workers`` processes (at most one
    per task); results come back in task order."""
    workers = max(1, min(num_workers, len(tasks)))
    ctx = torch.multiprocessing.get_context("spawn")
    queue = ctx.Queue()
    results: list[dict[str, Any] | None] = [None] * len(tasks)
    with ProcessPoolExecutor(workers, mp_context=ctx, initializer=_pool_init,
                             initargs=(provider, queue, workers, os.getpid())) as pool:
        futures = {pool.submit(_pool_run, forward, task): i for i, task in enumerate(tasks)}
        pending = set(futures)
        while pending:
            done, pending = wait(pending, timeout=0.5, return_when=FIRST_COMPLETED)
            _drain(queue, progress)
            for future in done:
                results[futures[future]] = future.result()
    _drain(queue, progress)  # counts still in flight when the last task returned
    queue.close()
    return [r for r in results if r is not None]


def run_mpi(
    provider: InferenceProvider, tasks: list[Any], forward: Forward, *,
    comm: Any, progress: Progress | None = None, loaded: LoadedModel | None = None,
    lm: LoadedLM | None = None,
) -> list[dict[str, Any]]:
    """Run ``tasks[rank::size]`` on each rank; rank 0 returns everyone's figures
    (other ranks return ``[]``). ``tasks`` must be the same list on every rank;
    ``loaded``, ``lm``: the models this rank has loaded already, if any."""
    from mpi4py import MPI

    rank, size = comm.Get_rank(), comm.Get_size()
    node = comm.Split_type(MPI.COMM_TYPE_SHARED, key=rank)  # the ranks sharing this machine
    on_node = node.Get_size()
    node.Free()
    mine = tasks[rank::size]
    stats: list[dict[str, Any]] = []
    if rank == 0:
        finished = 0

        def drain(block: bool) -> None:
            nonlocal finished
            while block or comm.iprobe(source=MPI.ANY_SOURCE, tag=_PROGRESS_TAG):
                message = comm.recv(source=MPI.ANY_SOURCE, tag=_PROGRESS_TAG)
                if message is None:
                    finished += 1
                elif progress is not None:
                    progress.update(*message)
                if block:
                    return

        def report(utterances: int, audio_seconds: float) -> None:
            if progress is not None:
                progress.update(utterances, audio_seconds)
            drain(block=False)

        if mine:
            env = provider.build(rank, workers_on_node=on_node, loaded=loaded, lm=lm)
            stats = [forward(env, task, report) for task in mine]
        while finished < size - 1:
            drain(block=True)
    else:
        requests = []

        def report(utterances: int, audio_seconds: float) -> None:
            requests.append(comm.isend((utterances, audio_seconds), dest=0, tag=_PROGRESS_TAG))

        if mine:
            env = provider.build(rank, workers_on_node=on_node)
            stats = [forward(env, task, report) for task in mine]
        requests.append(comm.isend(None, dest=0, tag=_PROGRESS_TAG))
        for request in requests:
            request.wait()
    gathered = comm.gather(stats, root=0)
    return [s for part in gathered or [] for s in part] if rank == 0 else []
