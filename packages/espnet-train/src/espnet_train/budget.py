"""How far a run has come: the one fraction that schedules and curricula follow.

A run ends at ``max_epochs`` worth of optimizer steps or at ``trainer.max_time``,
whichever comes first. With ``optim.horizon: steps`` schedules end at the former, as
ESPnet2's do; with ``horizon: time`` they end at whichever comes first, so that warmup
and decay finish when the time does, however fast the machine is that day:

    fraction = max(step / total_steps, elapsed / max_time)

``elapsed`` is the clock of the :class:`~lightning.pytorch.callbacks.Timer` that stops
the run (the same one, so the schedule and the stop agree); it is saved in checkpoints,
so a resumed run continues the schedule where the broken one was. A time-sized run
is not bit-for-bit repeatable on another machine (or another day): that is the price
of finishing its schedule inside the budget.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

__all__ = ["TrainingBudget"]


@dataclass
class TrainingBudget:
    """The fraction of a run done, in [0, 1].

    Args:
        total_steps: optimizer steps of ``max_epochs`` (None: unknown, not counted).
        max_seconds: ``trainer.max_time`` in seconds (None: not sized by time).
        elapsed: seconds of training so far (the stopping Timer's clock); set once the
            Timer exists (:meth:`follow`).
    """

    total_steps: int | None = None
    max_seconds: float | None = None
    elapsed: Callable[[], float] | None = field(default=None, repr=False)

    def follow(self, elapsed: Callable[[], float]) -> None:
        """Read the run's elapsed seconds from ``elapsed`` (e.g. the Timer's clock)."""
        self.elapsed = elapsed

    def time_fraction(self) -> float:
        """Elapsed over ``max_seconds``, in [0, 1] (0 when not sized by time)."""
        if not self.max_seconds or self.elapsed is None:
            return 0.0
        return min(1.0, max(0.0, self.elapsed() / self.max_seconds))

    def fraction(self, step: int) -> float:
        """Done fraction after ``step`` optimizer steps: the larger of steps and time."""
        steps = step / self.total_steps if self.total_steps else 0.0
        return min(1.0, max(steps, self.time_fraction()))
