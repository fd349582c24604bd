"""Progress of a data job: utterances/s, audio hours/s and ETA, shown by one process.

On a terminal it is a one-line bar redrawn in place (at most 5 times a second);
otherwise (stage logs, batch jobs) one log line every ``log_every_s`` seconds with the
same figures, so log files are not filled with carriage returns. The process that
shows it (the parent of a worker pool, rank 0 under MPI) feeds it with every worker's
counts.

Usage::

    progress = Progress(total=1200, desc="create_dataset")
    progress.update(16, audio_seconds=190.2)   # 16 utterances done, 190 s of audio
    progress.close()                           # final line: counts, rates, elapsed
"""

from __future__ import annotations

import logging
import sys
import time
from typing import IO

__all__ = ["Progress", "format_interval"]

log = logging.getLogger(__name__)

_REDRAW_S = 0.2


def format_interval(seconds: float) -> str:
    """``75.4`` -> ``1:15``, ``3725`` -> ``1:02:05``."""
    seconds = max(0, int(round(seconds)))
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes}:{secs:02d}"


class Progress:
    """Count finished utterances (and their audio) against ``total`` (None when unknown).

    Args:
        total: utterances to process in this run.
        desc: label of the bar / log line.
        log_every_s: seconds between log lines when not on a terminal.
        stream: where the bar goes (default: stderr); a bar only on a terminal.
        logger: where the log lines go when not on a terminal.
    """

    def __init__(
        self,
        total: int | None,
        *,
        desc: str = "progress",
        log_every_s: float = 30.0,
        stream: IO[str] | None = None,
        logger: logging.Logger | None = None,
    ) -> None:
        self.total = total
        self.desc = desc
        self.log_every_s = log_every_s
        self.count = 0
        self.audio_seconds = 0.0
        self._log = logger or log
        self._stream = stream if stream is not None else sys.stderr
        self._tty = bool(getattr(self._stream, "isatty", lambda: False)())
        self._start = time.perf_counter()
        self._last = self._start

    @property
    def elapsed(self) -> float:
        return time.perf_counter() - self._start

    def update(self, utterances: int, audio_seconds: float = 0.0) -> None:
        """Add ``utterances`` (from any worker) and their ``audio_seconds`` to the count."""
        self.count += utterances
        self.audio_seconds += audio_seconds
        now = time.perf_counter()
        if self._tty:
            if now - self._last >= _REDRAW_S or (self.total is not None and self.count >= self.total):
                self._last = now
                self._stream.write(f"\r{self.line()}\x1b[K")
                self._stream.flush()
        elif now - self._last >= self.log_every_s:
            self._last = now
            self._log.info("%s", self.line())

    def line(self) -> str:
        """``desc: 120/600 utt (20%), 4.10 utt/s, 0.0125 audio h/s, ETA 1:57``."""
        elapsed = max(self.elapsed, 1e-9)
        rate = self.count / elapsed
        text = f"{self.desc}: {self.count}"
        if self.total:
            text += f"/{self.total} utt ({100 * self.count / self.total:.0f}%)"
        else:
            text += " utt"
        text += f", {rate:.2f} utt/s, {self.audio_seconds / 3600 / elapsed:.4f} audio h/s"
        if self.total and rate > 0:
            text += f", ETA {format_interval(max(self.total - self.count, 0) / rate)}"
        return text

    def close(self) -> None:
        """Write the final figures (a newline after the bar; a log line otherwise)."""
        final = f"{self.line()} (done in {format_interval(self.elapsed)})"
        if self._tty:
            self._stream.write(f"\r{final}\x1b[K\n")
            self._stream.flush()
        else:
            self._log.info("%s", final)

    def __enter__(self) -> Progress:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
