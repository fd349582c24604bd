"""Tests for espnet_data.progress: log lines off a terminal, a bar on one, rates and ETA."""

from __future__ import annotations

import io
import logging

import pytest
from espnet_data.progress import Progress, format_interval


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_format_interval() -> None:
    assert format_interval(0) == "0:00"
    assert format_interval(75.4) == "1:15"
    assert format_interval(3725) == "1:02:05"


def test_line_has_counts_rates_and_eta(monkeypatch) -> None:
    clock = iter([100.0, 110.0])
    monkeypatch.setattr("espnet_data.progress.time.perf_counter", lambda: next(clock))
    progress = Progress(200, desc="create_dataset", stream=io.StringIO())
    progress.count, progress.audio_seconds = 50, 360.0
    # 50 utt in 10 s: 5 utt/s, 0.01 audio h/s, 150 left: 30 s
    assert progress.line() == "create_dataset: 50/200 utt (25%), 5.00 utt/s, 0.0100 audio h/s, ETA 0:30"


def test_off_a_terminal_it_logs_lines_every_interval(caplog) -> None:
    caplog.set_level(logging.INFO, logger="espnet_data.progress")
    progress = Progress(10, desc="job", log_every_s=0.0, stream=io.StringIO())
    progress.update(4, 12.0)
    progress.update(6, 18.0)
    progress.close()
    lines = [r.getMessage() for r in caplog.records]
    assert len(lines) == 3
    assert lines[0].startswith("job: 4/10 utt (40%), ") and "ETA" in lines[0]
    assert lines[-1].startswith("job: 10/10 utt (100%)") and "(done in 0:00)" in lines[-1]
    assert "audio h/s" in lines[-1]


def test_without_log_interval_only_the_final_line_is_logged(caplog) -> None:
    caplog.set_level(logging.INFO, logger="espnet_data.progress")
    with Progress(None, desc="job", stream=io.StringIO()) as progress:
        progress.update(3)
    assert [r.getMessage().split(",")[0] for r in caplog.records] == ["job: 3 utt"]


def test_on_a_terminal_it_redraws_one_line(caplog) -> None:
    caplog.set_level(logging.INFO, logger="espnet_data.progress")
    out = _Terminal()
    progress = Progress(2, desc="bar", stream=out)
    progress.update(1, 1.0)
    progress.update(1, 1.0)  # the last one is always drawn
    progress.close()
    text = out.getvalue()
    assert text.startswith("\r") and text.endswith("\n") and text.count("\n") == 1
    assert "bar: 2/2 utt (100%)" in text and "(done in" in text
    assert not caplog.records  # no log lines beside the bar


@pytest.mark.parametrize("total", [None, 0])
def test_unknown_total_has_no_eta(total) -> None:
    progress = Progress(total, stream=io.StringIO())
    progress.update(5)
    assert "ETA" not in progress.line() and "5 utt" in progress.line()
