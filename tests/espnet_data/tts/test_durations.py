"""espnet_data.tts.durations: durations.jsonl written atomically, read with checks."""

from __future__ import annotations

import json

import pytest
from espnet_data.tts.durations import durations_path, read_durations, write_durations


def test_round_trip_keeps_order_and_records_frames(tmp_path) -> None:
    path = durations_path(tmp_path / "train")
    assert path.name == "durations.jsonl"
    write_durations(path, {"b": [2, 0, 3], "a": [1]})
    rows = [json.loads(line) for line in path.read_text().splitlines()]
    assert rows == [
        {"key": "b", "durations": [2, 0, 3], "frames": 5},
        {"key": "a", "durations": [1], "frames": 1},
    ]
    assert list(read_durations(path).items()) == [("b", [2, 0, 3]), ("a", [1])]
    write_durations(path, [("c", (4, 4))])  # pairs work too; the file is replaced whole
    assert read_durations(path) == {"c": [4, 4]}
    assert not [p for p in path.parent.iterdir() if p.name.startswith(".")]  # no temp left


@pytest.mark.parametrize(
    ("items", "message"),
    [
        ([("", [1])], "key '' must be a non-empty string"),
        ([("a", [])], "non-empty list"),
        ([("a", [1, -2])], "item 1 is -2"),
        ([("a", [1.5])], "item 0 is 1.5"),
        ([("a", [1]), ("a", [2])], "given twice"),
    ],
)
def test_writer_refuses_bad_rows_and_writes_nothing(tmp_path, items, message) -> None:
    path = tmp_path / "durations.jsonl"
    with pytest.raises(ValueError, match=message):
        write_durations(path, items)
    assert not path.exists()


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ("{not json", "not a JSON line"),
        ('{"key": "x"}', "expected an object with 'key' and 'durations'"),
        ('{"key": "x", "durations": "123"}', "non-empty list of ints"),
        ('{"key": "x", "durations": [1, true]}', "item 1 is True"),
        ('{"key": "x", "durations": [1, 2], "frames": 4}', "frames 4 but its durations sum to 3"),
        ('{"key": "a", "durations": [1]}', "key 'a' appears twice"),
    ],
)
def test_reader_names_the_bad_line(tmp_path, line, message) -> None:
    path = tmp_path / "durations.jsonl"
    path.write_text('{"key": "a", "durations": [1], "frames": 1}\n\n' + line + "\n")
    with pytest.raises(ValueError, match=f"durations.jsonl:3: .*{message}"):
        read_durations(path)


def test_a_missing_file_names_the_stage_that_writes_it(tmp_path) -> None:
    with pytest.raises(FileNotFoundError, match="collect_stats"):
        read_durations(tmp_path / "durations.jsonl")
