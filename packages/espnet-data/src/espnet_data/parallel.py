"""Where data jobs run: in this process, in a local process pool, or on MPI ranks.

The shard writer plans its work once: under MPI each rank takes its share of the shards
(:func:`run_tasks`); in one process pieces of shards go to a pool of workers as they
free up (:func:`map_unordered`), every worker on one thread. Under MPI
(``mpiexec -n N ...``) every rank calls the same code: :class:`World` gives the rank,
the size and the three collective operations the writer needs (``bcast``, ``gather``,
``barrier``); outside MPI they are no-ops on one process.

``backend="auto"`` picks MPI when the process was started by ``mpiexec``/``mpirun``
with more than one rank (detected from the launcher's environment: ``PMI_SIZE`` for
MPICH/Intel MPI, ``OMPI_COMM_WORLD_SIZE`` for Open MPI, ``MV2_COMM_WORLD_SIZE`` for
MVAPICH), else a local process pool. mpi4py is optional: ``pip install espnet-data[mpi]``.
"""

from __future__ import annotations

import contextlib
import logging
import os
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from dataclasses import dataclass
from typing import Any, Literal, TypeVar

log = logging.getLogger(__name__)

Backend = Literal["auto", "processes", "mpi"]
T = TypeVar("T")
R = TypeVar("R")
C = TypeVar("C")

_LAUNCHER_SIZE_VARS = ("PMI_SIZE", "OMPI_COMM_WORLD_SIZE", "MV2_COMM_WORLD_SIZE")


def launcher_world_size() -> int:
    """The number of ranks ``mpiexec`` started, from its environment; 1 outside MPI."""
    for name in _LAUNCHER_SIZE_VARS:
        value = os.environ.get(name, "")
        if value.isdigit():
            return int(value)
    return 1


@dataclass
class World:
    """This process's place among the processes of one job (one process outside MPI)."""

    rank: int = 0
    size: int = 1
    comm: Any = None  # an mpi4py communicator under MPI

    @property
    def backend(self) -> str:
        return "mpi" if self.comm is not None else "processes"

    def bcast(self, obj: T) -> T:
        """Rank 0's ``obj`` on every rank."""
        return obj if self.comm is None else self.comm.bcast(obj, root=0)

    def gather(self, obj: T) -> list[T] | None:
        """Every rank's ``obj`` on rank 0 (in rank order); ``None`` on the other ranks."""
        return [obj] if self.comm is None else self.comm.gather(obj, root=0)

    def barrier(self) -> None:
        if self.comm is not None:
            self.comm.barrier()


def get_world(backend: Backend = "auto") -> World:
    """The :class:`World` of ``backend``; ``auto`` is MPI only when launched by mpiexec."""
    if backend not in ("auto", "processes", "mpi"):
        raise ValueError(f"backend must be 'auto', 'processes' or 'mpi', got {backend!r}")
    if backend == "processes" or (backend == "auto" and launcher_world_size() <= 1):
        return World()
    try:
        from mpi4py import MPI
    except ImportError as err:
        raise ImportError(
            f"this job runs under mpiexec ({launcher_world_size()} ranks) or backend 'mpi' was "
            "asked for, but mpi4py is not installed: `pip install espnet-data[mpi]` "
            "(gives mpi4py and MPICH's mpiexec), or run without mpiexec"
        ) from err
    comm = MPI.COMM_WORLD
    return World(rank=comm.Get_rank(), size=comm.Get_size(), comm=comm)


_BLAS_THREAD_FUNCTIONS = (  # (get, set) pairs of the BLAS builds numpy and torch bring
    ("scipy_openblas_get_num_threads64_", "scipy_openblas_set_num_threads64_"),  # numpy >= 2
    ("openblas_get_num_threads64_", "openblas_set_num_threads64_"),
    ("openblas_get_num_threads", "openblas_set_num_threads"),
    ("MKL_Get_Max_Threads", "MKL_Set_Num_Threads"),
)


def _blas_libraries() -> list[tuple[str, Any, Any]]:
    """``(path, get, set)`` of every OpenBLAS/MKL loaded in this process (Linux: read from
    ``/proc/self/maps``; elsewhere none are found)."""
    import ctypes

    try:
        with open("/proc/self/maps") as maps:
            paths = {line.split()[-1] for line in maps if "blas" in line or "mkl_rt" in line}
    except OSError:
        return []
    found = []
    for path in sorted(p for p in paths if p.startswith("/")):
        try:
            lib = ctypes.CDLL(path)
        except OSError:
            continue
        for get, set_ in _BLAS_THREAD_FUNCTIONS:
            if hasattr(lib, get) and hasattr(lib, set_):
                found.append((path, getattr(lib, get), getattr(lib, set_)))
                break
    return found


def _limit_blas_threads() -> list[str]:
    """Set every OpenBLAS/MKL loaded in this process to one thread; return their paths.

    numpy's OpenBLAS starts one thread per core when it is loaded, and a forked worker
    inherits that setting: 16 workers on 16 cores then run 256 BLAS threads in the
    synthesiser's resampling matmuls.
    """
    for _, _, set_threads in _blas_libraries():
        set_threads(1)
    return [path for path, _, _ in _blas_libraries()]


def _one_thread_per_worker() -> None:
    """Pool workers compute on one thread each (the pool is the parallelism).

    torch's intra-op threads and numpy's BLAS threads are set to one. This also keeps a
    worker forked from a process whose OpenMP pool is running (after torch or
    torchaudio's resampler ran there) from hanging in its first parallel region.
    """
    import torch

    torch.set_num_threads(1)
    _limit_blas_threads()


@contextlib.contextmanager
def one_thread() -> Iterator[None]:
    """torch and BLAS on one thread inside the block, as in a pool worker; restored after.

    A BLAS matmul split over several threads can round differently (its edge kernels
    sum in another order), so synthesised audio computed here on many threads would
    differ in the last bit from the same audio computed by a worker. Work done in this
    process for a job that could also run in a pool runs inside this block.
    """
    import torch

    torch_threads = torch.get_num_threads()
    blas = [(set_threads, get_threads()) for _, get_threads, set_threads in _blas_libraries()]
    torch.set_num_threads(1)
    for set_threads, _ in blas:
        set_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(torch_threads)
        for set_threads, previous in blas:
            set_threads(previous)


def run_tasks(
    fn: Callable[[T], R],
    tasks: Sequence[T],
    *,
    num_workers: int = 1,
    world: World | None = None,
) -> Iterator[tuple[int, R]]:
    """Run ``fn`` on this process's share of ``tasks``; yield ``(task index, result)``.

    On one process with ``num_workers > 1`` the tasks go to a process pool (``fn`` and
    the tasks must pickle); under MPI rank ``r`` runs ``tasks[r::size]`` in-process, so
    one rank per core is the layout to use. Results come in task order.
    """
    world = world or World()
    mine = list(range(world.rank, len(tasks), world.size))
    if world.comm is None and num_workers > 1 and len(mine) > 1:
        with ProcessPoolExecutor(
            min(num_workers, len(mine)), initializer=_one_thread_per_worker
        ) as pool:
            yield from zip(mine, pool.map(fn, [tasks[i] for i in mine]), strict=True)
        return
    for i in mine:
        yield i, fn(tasks[i])


# Set once in each pool worker by _init_worker: the job's read-only inputs (a corpus, its
# options), so that they cross to a worker once instead of with every work item.
_WORKER_CONTEXT: Any = None


def _init_worker(context: Any) -> None:
    global _WORKER_CONTEXT
    _one_thread_per_worker()
    _WORKER_CONTEXT = context


def _call_in_worker(fn: Callable[[Any, T], R], item: T) -> R:
    return fn(_WORKER_CONTEXT, item)


def map_unordered(
    fn: Callable[[C, T], R],
    items: Iterable[T],
    *,
    context: C,
    num_workers: int = 1,
    max_pending: int | None = None,
) -> Iterator[tuple[int, R]]:
    """``fn(context, item)`` for every item; yield ``(item index, result)`` as each finishes.

    With ``num_workers > 1`` the items run in a process pool, each worker on one thread
    (torch and BLAS), and results come in the order they finish; ``context`` reaches each
    worker once (inherited when the pool forks), ``fn`` and each item are pickled. At
    most ``max_pending`` (default ``4 * num_workers``) items are in flight, so ``items``
    may be a lazy iterator. With ``num_workers <= 1`` everything runs here, in order,
    on one thread too (:func:`one_thread`), so the results are the same to the bit.
    A failing item raises here; the items not started yet are cancelled.
    """
    if num_workers <= 1:
        with one_thread():  # as a worker computes: the same results, to the bit
            for i, item in enumerate(items):
                yield i, fn(context, item)
        return
    limit = max_pending or 4 * num_workers
    numbered = enumerate(items)
    pending: dict[Future[R], int] = {}
    pool = ProcessPoolExecutor(num_workers, initializer=_init_worker, initargs=(context,))
    try:

        def fill() -> None:
            if len(pending) >= limit:
                return
            for i, item in numbered:
                pending[pool.submit(_call_in_worker, fn, item)] = i
                if len(pending) >= limit:
                    return

        fill()
        while pending:
            finished, _ = wait(pending, return_when=FIRST_COMPLETED)
            for future in finished:
                yield pending.pop(future), future.result()
            fill()
    finally:
        pool.shutdown(wait=True, cancel_futures=True)
