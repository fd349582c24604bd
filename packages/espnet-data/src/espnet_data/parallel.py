"""Where data jobs run: in this process, in a local process pool, or on MPI ranks.

The shard writer plans its tasks once and hands them to :func:`run_tasks`; the same task
function runs in every backend, only the split of the task list differs. Under MPI
(``mpiexec -n N ...``) every rank calls the same code: :class:`World` gives the rank,
the size and the three collective operations the writer needs (``bcast``, ``gather``,
``barrier``); outside MPI they are no-ops on one process.

``backend="auto"`` picks MPI when the process was started by ``mpiexec``/``mpirun``
with more than one rank (detected from the launcher's environment: ``PMI_SIZE`` for
MPICH/Intel MPI, ``OMPI_COMM_WORLD_SIZE`` for Open MPI, ``MV2_COMM_WORLD_SIZE`` for
MVAPICH), else a local process pool. mpi4py is optional: ``pip install espnet-data[mpi]``.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from typing import Any, Literal, TypeVar

log = logging.getLogger(__name__)

Backend = Literal["auto", "processes", "mpi"]
T = TypeVar("T")
R = TypeVar("R")

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


def _one_thread_per_worker() -> None:
    """Pool workers compute on one thread each (the pool is the parallelism).

    This also keeps a worker forked from a process whose OpenMP pool is running (after
    torch or torchaudio's resampler ran there) from hanging in its first parallel region.
    """
    import torch

    torch.set_num_threads(1)


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
