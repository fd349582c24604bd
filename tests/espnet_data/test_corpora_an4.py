"""Tests for espnet_data.corpora.an4 (and its download helpers) on a real AN4 subset.

``tests/data/mini_an4.tar.gz`` holds 8 real AN4 utterances in the original layout
(see ``tests/data/README.md``); downloads are tested against a local HTTP server on
127.0.0.1 and ``file://`` URLs, never the network.
"""

from __future__ import annotations

import hashlib
import http.server
import pickle
import shutil
import tarfile
import threading
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from espnet_data import Corpus, ShardDataset, read_index, shard_paths, write_split
from espnet_data.corpora import AN4Corpus
from espnet_data.corpora.an4 import download_an4, parse_transcription
from espnet_data.download import ChecksumError

FIXTURE = Path(__file__).parents[1] / "data" / "mini_an4.tar.gz"
TRAIN_TEXTS = {
    "an251-fash-b": "YES",
    "an253-fash-b": "GO",
    "cen8-fbbh-b": "MARCH THIRD NINETEEN TWENTY EIGHT",
    "an152-mwhw-b": "START",
    "cen8-mwhw-b": "ELEVEN SEVENTEEN FIFTY ONE",
}
TEST_TEXTS = {
    "cen8-fcaw-b": "ELEVEN TWENTY SEVEN FIFTY SEVEN",
    "cen8-mmxg-b": "OCTOBER TWENTY FOUR NINETEEN SEVENTY",
}


@pytest.fixture(scope="module")
def downloads(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The unpacked fixture's ``downloads`` folder (holds ``an4/``); read-only."""
    out = tmp_path_factory.mktemp("an4")
    with tarfile.open(FIXTURE) as tar:
        tar.extractall(out, filter="data")
    return out / "downloads"


@pytest.fixture
def an4_copy(tmp_path: Path, downloads: Path) -> Path:
    """A writable copy of the fixture's ``an4`` folder."""
    return Path(shutil.copytree(downloads / "an4", tmp_path / "an4"))


@pytest.fixture(scope="module")
def archive(tmp_path_factory: pytest.TempPathFactory, downloads: Path) -> Path:
    """The fixture repacked like CMU's ``an4_sphere.tar.gz`` (top-level ``an4/``)."""
    path = tmp_path_factory.mktemp("archive") / "an4_sphere.tar.gz"
    with tarfile.open(path, "w:gz") as tar:
        tar.add(downloads / "an4", arcname="an4")
    return path


class _RangeHandler(http.server.BaseHTTPRequestHandler):
    """Serves one file with HTTP Range support and records what it was asked."""

    payload: bytes = b""
    requests: list[str | None] = []

    def do_GET(self) -> None:  # noqa: N802 - the http.server spelling
        asked = self.headers.get("Range")
        type(self).requests.append(asked)
        data = self.payload
        if asked:
            start = int(asked.removeprefix("bytes=").split("-")[0])
            if start >= len(data):
                self.send_response(416)
                self.end_headers()
                return
            self.send_response(206)
            self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
            data = data[start:]
        else:
            self.send_response(200)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def server(archive: Path) -> Iterator[tuple[str, type[_RangeHandler]]]:
    handler = type("Handler", (_RangeHandler,), {"payload": archive.read_bytes(), "requests": []})
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}/an4_sphere.tar.gz", handler
    finally:
        httpd.shutdown()
        httpd.server_close()


# --- reading the layout -------------------------------------------------------------


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        ("<s> MARCH THIRD </s> (cen8-fbbh-b)\n", ("cen8-fbbh-b", "MARCH THIRD")),
        ("ELEVEN TWENTY SEVEN (cen8-fcaw-b)", ("cen8-fcaw-b", "ELEVEN TWENTY SEVEN")),
        ("<s>  YES  </s>(an251-fash-b)  ", ("an251-fash-b", "YES")),
        ("<s> </s> (an1-x-b)", ("an1-x-b", "")),
        ("NO UTTERANCE ID", None),
    ],
)
def test_both_transcription_formats(line: str, expected: tuple[str, str] | None) -> None:
    assert parse_transcription(line) == expected


def test_entries_of_the_real_subset(downloads: Path) -> None:
    corpus = AN4Corpus(root=str(downloads), dev_speakers=1)
    assert isinstance(corpus, Corpus)
    assert corpus.splits() == ["train", "dev", "test"]
    train, dev, test = (corpus.entries(s) for s in corpus.splits())
    listed = {e.key: e.text for e in train + dev if e.text}
    assert listed == TRAIN_TEXTS
    assert {e.key: e.text for e in test} == TEST_TEXTS
    # cen7-fash-b is on disk but in neither etc/ file: listed, to be rejected
    assert [e.key for e in train + dev if not e.text] == ["cen7-fash-b"]
    # dev holds whole speakers, never seen in train
    assert {e.speaker for e in dev} == {"fbbh"}
    assert {e.speaker for e in train} == {"fash", "mwhw"}
    assert [e.key for e in train][:2] == ["an251-fash-b", "an253-fash-b"]  # fileids order
    assert corpus.speakers("test") == ["fcaw", "mmxg"]
    assert pickle.loads(pickle.dumps(corpus)).entries("test") == test


def test_root_may_be_the_an4_folder_itself_or_come_from_the_environment(
    downloads: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    direct = AN4Corpus(root=str(downloads / "an4")).entries("test")
    assert [e.key for e in direct] == list(TEST_TEXTS)
    monkeypatch.setenv("AN4_ROOT", str(downloads))
    assert AN4Corpus().entries("test") == direct


def test_missing_root_and_missing_corpus_are_clear_errors(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("AN4_ROOT", raising=False)
    corpus = AN4Corpus()
    assert corpus.splits() == ["train", "dev", "test"]  # building it touches no disk
    with pytest.raises(ValueError, match="AN4_ROOT.*download: true"):
        corpus.entries("train")
    with pytest.raises(FileNotFoundError, match=r"an4/etc/an4_train.fileids.*download: true"):
        AN4Corpus(root=str(tmp_path)).entries("train")


def test_dev_speakers_by_count_by_name_or_none(downloads: Path) -> None:
    root = str(downloads)
    named = AN4Corpus(root=root, dev_speakers=["mwhw", "fash"])
    assert {e.speaker for e in named.entries("dev")} == {"mwhw", "fash"}
    assert {e.speaker for e in named.entries("train")} == {"fbbh"}
    none = AN4Corpus(root=root, dev_speakers=0)
    assert none.splits() == ["train", "test"]
    assert len(none.entries("train")) == 6
    with pytest.raises(ValueError, match=r"'dev'.*\['train', 'test'\]"):
        none.entries("dev")
    with pytest.raises(ValueError, match=r"\['nobody'\] are not AN4 training speakers"):
        AN4Corpus(root=root, dev_speakers=["nobody"]).entries("dev")
    with pytest.raises(ValueError, match="would leave no training speaker"):
        AN4Corpus(root=root, dev_speakers=3).entries("train")


def test_sphere_audio_decodes_to_the_stored_samples(downloads: Path) -> None:
    corpus = AN4Corpus(root=str(downloads))
    entry = next(e for e in corpus.entries("test") if e.key == "cen8-fcaw-b")
    audio, rate = corpus.load_audio(entry)
    assert rate == 16000 and audio.dtype == np.float32 and audio.ndim == 1
    raw = Path(entry.source).read_bytes()
    header = raw[:1024].decode("ascii")
    assert header.startswith("NIST_1A") and "sample_byte_format -s2 01" in header
    pcm = np.frombuffer(raw[1024:], dtype="<i2")  # 16-bit little-endian after the header
    assert len(audio) == len(pcm) == 46400
    np.testing.assert_array_equal(audio, pcm.astype(np.float32) / 32768)


def test_missing_transcript_and_missing_audio_are_rejected_with_reasons(
    tmp_path: Path, an4_copy: Path
) -> None:
    (an4_copy / "wav/an4_clstk/fash/an253-fash-b.sph").unlink()
    with open(an4_copy / "etc/an4_train.transcription", "a") as f:
        f.write("<s> NEVER RECORDED </s> (an999-mwhw-b)\n")
    corpus = AN4Corpus(root=str(tmp_path), dev_speakers=0)
    summary = write_split(corpus, "train", tmp_path / "data/train", utterances_per_shard=3)
    reasons = {r["key"]: (r["code"], r["reason"]) for r in summary["rejected"]}
    assert set(reasons) == {"an253-fash-b", "an999-mwhw-b", "cen7-fash-b"}
    assert "an4_clstk/fash/an253-fash-b.sph is missing" in reasons["an253-fash-b"][1]
    assert "an4_clstk/mwhw/an999-mwhw-b.sph is missing" in reasons["an999-mwhw-b"][1]
    assert reasons["cen7-fash-b"][0] == "missing_transcript"
    keys = [row["key"] for row in read_index(tmp_path / "data/train")]
    assert keys == ["an251-fash-b", "cen8-fbbh-b", "an152-mwhw-b", "cen8-mwhw-b"]


def test_a_non_utf8_transcription_line_rejects_only_its_utterance(
    tmp_path: Path, an4_copy: Path
) -> None:
    path = an4_copy / "etc/an4_test.transcription"
    lines = path.read_bytes().splitlines(keepends=True)
    path.write_bytes(lines[0] + b"OCTOBER \xff\xfe (cen8-mmxg-b)\n")
    corpus = AN4Corpus(root=str(tmp_path))
    summary = write_split(corpus, "test", tmp_path / "data/test")
    assert summary["num_utterances"] == 1
    assert [(r["key"], r["code"]) for r in summary["rejected"]] == [
        ("cen8-mmxg-b", "bad_text_encoding")
    ]


def test_a_repeated_transcription_keeps_the_first(tmp_path: Path, an4_copy: Path) -> None:
    with open(an4_copy / "etc/an4_test.transcription", "a") as f:
        f.write("SOMETHING ELSE (cen8-fcaw-b)\n")
    corpus = AN4Corpus(root=str(tmp_path))
    entries = corpus.entries("test")
    assert [e.key for e in entries] == ["cen8-fcaw-b", "cen8-fcaw-b", "cen8-mmxg-b"]
    with pytest.raises(ValueError, match="an4_test.transcription line 3 repeats utterance"):
        corpus.load_audio(entries[1])
    summary = write_split(corpus, "test", tmp_path / "data/test")
    assert [(r["key"], r["code"]) for r in summary["rejected"]] == [
        ("cen8-fcaw-b", "duplicate_key")
    ]
    assert [r["text"] for r in read_index(tmp_path / "data/test")] == list(TEST_TEXTS.values())


def test_shards_from_the_real_subset(tmp_path: Path, downloads: Path) -> None:
    corpus = AN4Corpus(root=str(downloads), dev_speakers=1)
    summaries = {
        split: write_split(corpus, split, tmp_path / split, utterances_per_shard=2)
        for split in corpus.splits()
    }
    assert {s: summaries[s]["num_utterances"] for s in summaries} == {
        "train": 4, "dev": 1, "test": 2,
    }
    assert [(r["key"], r["code"]) for r in summaries["train"]["rejected"]] == [
        ("cen7-fash-b", "missing_transcript")
    ]
    rows = read_index(tmp_path / "test")
    assert [(r["key"], r["text"], r["speaker"]) for r in rows] == [
        (k, t, k.split("-")[1]) for k, t in TEST_TEXTS.items()
    ]
    assert [r["duration"] for r in rows] == [2.9, 2.3]
    samples = list(ShardDataset(shard_paths(tmp_path / "test")))
    audio, _ = corpus.load_audio(corpus.entries("test")[0])
    assert samples[0]["key"] == "cen8-fcaw-b" and samples[0]["sample_rate"] == 16000
    np.testing.assert_allclose(samples[0]["audio"], audio, atol=1 / 32768)


# --- download ------------------------------------------------------------------------


def test_download_over_http_then_skip_when_present(tmp_path: Path, server, archive: Path) -> None:
    url, handler = server
    digest = hashlib.sha256(archive.read_bytes()).hexdigest()
    corpus = AN4Corpus(root=str(tmp_path / "dl"), download=True, url=url, sha256=digest)
    assert [e.key for e in corpus.entries("test")] == list(TEST_TEXTS)
    assert (tmp_path / "dl/an4_sphere.tar.gz").read_bytes() == archive.read_bytes()
    assert sorted(p.name for p in (tmp_path / "dl").iterdir()) == [
        "an4", "an4_sphere.tar.gz", "an4_sphere.tar.gz.sha256",
    ]
    assert (tmp_path / "dl/an4_sphere.tar.gz.sha256").read_text().split()[0] == digest
    assert handler.requests == [None]
    assert download_an4(tmp_path / "dl", url=url) == tmp_path / "dl/an4"
    assert handler.requests == [None]  # present: never asked again


def test_an_interrupted_download_resumes(tmp_path: Path, server, archive: Path) -> None:
    url, handler = server
    data = archive.read_bytes()
    (tmp_path / "an4_sphere.tar.gz.part").write_bytes(data[:1000])
    an4 = download_an4(tmp_path, url=url, keep_archive=False)
    assert handler.requests == ["bytes=1000-"]
    assert (an4 / "etc/an4_test.transcription").is_file()
    # the archive is gone; its recorded sha256 stays, to check a later download
    assert [p.name for p in tmp_path.glob("an4_sphere.tar.gz*")] == ["an4_sphere.tar.gz.sha256"]


def test_a_bad_checksum_or_the_wrong_archive_is_a_clear_error(
    tmp_path: Path, archive: Path, downloads: Path
) -> None:
    with pytest.raises(ChecksumError, match="sha256 .* expected 00ff"):
        download_an4(tmp_path / "a", url=archive.as_uri(), sha256="00ff")  # file:// works too
    assert not (tmp_path / "a/an4").exists()
    wrong = tmp_path / "wrong.tar.gz"
    with tarfile.open(wrong, "w:gz") as tar:
        tar.add(downloads / "noise", arcname="noise")
    with pytest.raises(FileNotFoundError, match="is it the AN4 SPHERE archive"):
        download_an4(tmp_path / "b", url=wrong.as_uri())


# --- issue 21: https, and a digest recorded on first use (CMU publishes none) ---------


def test_the_default_url_is_https() -> None:
    from espnet_data.corpora.an4 import AN4_URL

    assert AN4_URL == "https://www.speech.cs.cmu.edu/databases/an4/an4_sphere.tar.gz"
    assert AN4Corpus().url == AN4_URL


def test_first_download_records_its_sha256_and_later_ones_must_match(
    tmp_path: Path, server, archive: Path, caplog: pytest.LogCaptureFixture
) -> None:
    url, handler = server
    digest = hashlib.sha256(archive.read_bytes()).hexdigest()
    with caplog.at_level("WARNING", logger="espnet_data.download"):
        download_an4(tmp_path, url=url, keep_archive=False)
    record = tmp_path / "an4_sphere.tar.gz.sha256"
    assert record.read_text() == f"{digest}  an4_sphere.tar.gz\n"
    warning = "\n".join(r.getMessage() for r in caplog.records if r.levelname == "WARNING")
    assert "no published checksum" in warning and digest in warning and str(record) in warning
    # the same bytes again (a fresh copy of the corpus): accepted, no new warning
    shutil.rmtree(tmp_path / "an4")
    caplog.clear()
    with caplog.at_level("WARNING", logger="espnet_data.download"):
        download_an4(tmp_path, url=url)
    assert not [r for r in caplog.records if r.levelname == "WARNING"]
    # the server now serves other bytes: refused, naming the record
    shutil.rmtree(tmp_path / "an4")
    (tmp_path / "an4_sphere.tar.gz").unlink()
    handler.payload = archive.read_bytes()[:-10] + b"0123456789"
    with pytest.raises(ChecksumError, match="recorded in .*an4_sphere.tar.gz.sha256"):
        download_an4(tmp_path, url=url)
    assert not (tmp_path / "an4").exists() and not (tmp_path / "an4_sphere.tar.gz").exists()
    assert record.read_text().split()[0] == digest  # the record is not replaced


def test_a_pinned_sha256_wins_over_the_record(tmp_path: Path, archive: Path) -> None:
    digest = hashlib.sha256(archive.read_bytes()).hexdigest()
    (tmp_path / "an4_sphere.tar.gz.sha256").write_text("f" * 64 + "  an4_sphere.tar.gz\n")
    with pytest.raises(ChecksumError, match="recorded in"):
        download_an4(tmp_path, url=archive.as_uri())
    assert download_an4(tmp_path, url=archive.as_uri(), sha256=digest) == tmp_path / "an4"
    assert (tmp_path / "an4_sphere.tar.gz.sha256").read_text().split()[0] == digest
