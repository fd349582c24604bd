"""Progress of an inference run: utterances/s and ETA, shown by one process.

On a terminal it is a ``tqdm`` bar; otherwise (stage logs, batch jobs) one log line
every ``log_every_s`` seconds with the same figures, so log files are not filled with
carriage returns. The process that shows it (rank 0 under MPI, the parent of a
process pool) feeds it with the counts of every worker.
"""

from __future__ import annotations

import logging
import sys
import time
from collections.abc import Callable
from typing import IO

from tqdm import tqdm

__all__ = ["Progress", "ProgressFn"]

log = logging.getLogger(__name__)

ProgressFn = Callable[[int, float], None]
"""Called with (utterances, audio seconds) just decoded."""


class Progress:
    """Count decoded utterances against ``total`` (None when unknown).

    Args:
        total: utterances to decode in this run.
        desc: label of the bar / log line.
        log_every_s: seconds between log lines when not on a terminal.
        stream: where the bar goes (default: stderr); a bar only on a terminal.
    """

    def __init__(
        self,
        total: int | None,
        *,
        desc: str = "decode",
        log_every_s: float = 30.0,
        stream: IO[str] | None = None,
    ) -> None:
        self.total = total
        self.desc = desc
        self.log_every_s = log_every_s
        self.count = 0
        self.audio_seconds = 0.0
        self._start = time.perf_counter()
        self._last_log = self._start
        out = stream if stream is not None else sys.stderr
        self._bar: tqdm | None = None
        if getattr(out, "isatty", lambda: False)():
            self._bar = tqdm(total=total, desc=desc, unit="utt", file=out, dynamic_ncols=True)

    def update(self, utterances: int, audio_seconds: float = 0.0) -> None:
        """Add ``utterances`` (from any worker) to the count."""
        self.count += utterances
        self.audio_seconds += audio_seconds
        if self._bar is not None:
            self._bar.update(utterances)
            return
        now = time.perf_counter()
        if now - self._last_log >= self.log_every_s:
            self._last_log = now
            log.info("%s", self.line())

    def line(self) -> str:
        """``desc: 120/600 utt, 4.1 utt/s, 12.3 audio s/s, ETA 1:57`` (ETA when total is known)."""
        elapsed = max(time.perf_counter() - self._start, 1e-9)
        rate = self.count / elapsed
        text = f"{self.desc}: {self.count}"
        if self.total is not None:
            text += f"/{self.total}"
        text += f" utt, {rate:.2f} utt/s, {self.audio_seconds / elapsed:.2f} audio s/s"
        if self.total is not None and rate > 0:
            text += f", ETA {tqdm.format_interval(max(self.total - self.count, 0) / rate)}"
        return text

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()
        else:
            log.info("%s (done)", self.line())
