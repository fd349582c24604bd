"""espnet_data.text.librispeech: the OpenSLR 11 LM text, local and downloaded (a local server)."""

from __future__ import annotations

import gzip
import hashlib
import shutil
from pathlib import Path

import pytest
from espnet_data.download import ChecksumError, sha256_record
from espnet_data.text import LibriSpeechLMText, write_text_split
from espnet_data.text import librispeech as lm

from tests.espnet_data.test_corpora_librispeech import http_dir  # noqa: F401 - a fixture

# the file's layout: one normalised upper-case sentence per line (a line with a stray byte
# and an empty line added, to show what the writer does with them)
LINES = [b"THE PROJECT GUTENBERG EBOOK OF THE IDIOT", b"", b"BY FYODOR DOSTOYEVSKY",
         b"CHAPTER I \xe9", b"TOWARDS THE END OF NOVEMBER DURING A THAW"]


@pytest.fixture(autouse=True)
def no_root_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(lm.ROOT_ENV, raising=False)


def _gz() -> bytes:
    return gzip.compress(b"\n".join(LINES) + b"\n", mtime=0)


def test_local_file_in_its_layout(tmp_path: Path) -> None:
    (tmp_path / lm.LM_TEXT_NAME).write_bytes(_gz())
    source = LibriSpeechLMText(root=str(tmp_path))
    sentences = list(source.sentences())
    assert sentences[0] == ("librispeech_lm_norm_00000001", LINES[0])
    assert len(sentences) == 5 and sentences[4][0] == "librispeech_lm_norm_00000005"
    summary = write_text_split(sentences, tmp_path / "train")
    assert summary["num_sentences"] == 3
    assert summary["rejected_counts"] == {"empty": 1, "not_utf8": 1}
    assert {r["key"] for r in summary["rejected"]} == {"librispeech_lm_norm_00000002",
                                                      "librispeech_lm_norm_00000004"}
    assert list(LibriSpeechLMText(root=str(tmp_path), max_lines=1).sentences()) == sentences[:1]
    assert source.input_paths() == {"root": str(tmp_path / lm.LM_TEXT_NAME)}


def test_unpacked_text_and_the_environment_root(tmp_path, monkeypatch) -> None:
    (tmp_path / "librispeech-lm-norm.txt").write_bytes(b"\n".join(LINES))
    monkeypatch.setenv(lm.ROOT_ENV, str(tmp_path))
    assert LibriSpeechLMText().file() == tmp_path / "librispeech-lm-norm.txt"


def test_missing_without_download_says_where_and_how(tmp_path) -> None:
    with pytest.raises(FileNotFoundError, match="set download: true"):
        LibriSpeechLMText(root=str(tmp_path)).file()


def test_download_is_checked_and_kept(tmp_path, http_dir, monkeypatch) -> None:  # noqa: F811
    served, url = http_dir
    url = url.removesuffix("/12") + "/11"
    (served / "resources" / "11").mkdir(parents=True)
    (served / "resources" / "11" / lm.LM_TEXT_NAME).write_bytes(_gz())
    root = tmp_path / "root"
    md5 = hashlib.md5(_gz()).hexdigest()
    source = LibriSpeechLMText(root=str(root), download=True, base_url="http://127.0.0.1:9/x",
                               mirrors=[url], md5=md5, retries=0)
    assert source.input_paths() == {}
    assert list(source.sentences())[0][1] == LINES[0]
    assert (root / lm.LM_TEXT_NAME).read_bytes() == _gz()
    shutil.rmtree(served / "resources")  # present now: nothing is fetched again
    assert len(list(source.sentences())) == 5


def test_a_file_that_is_not_openslrs_fails_the_published_md5(tmp_path, http_dir) -> None:  # noqa: F811
    served, url = http_dir
    url = url.removesuffix("/12") + "/11"
    (served / "resources" / "11").mkdir(parents=True)
    (served / "resources" / "11" / lm.LM_TEXT_NAME).write_bytes(_gz())
    source = LibriSpeechLMText(root=str(tmp_path), download=True, base_url=url, mirrors=[], retries=0)
    with pytest.raises(ChecksumError, match=f"expected {lm.LM_TEXT_MD5}"):
        source.file()
    assert not (tmp_path / lm.LM_TEXT_NAME).exists()


def test_without_md5_the_first_download_sha256_is_recorded(tmp_path, http_dir) -> None:  # noqa: F811
    served, url = http_dir
    url = url.removesuffix("/12") + "/11"
    (served / "resources" / "11").mkdir(parents=True)
    (served / "resources" / "11" / lm.LM_TEXT_NAME).write_bytes(_gz())
    path = LibriSpeechLMText(root=str(tmp_path), download=True, base_url=url, mirrors=[], md5=None,
                             retries=0).file()
    assert sha256_record(path).read_text().split()[0] == hashlib.sha256(_gz()).hexdigest()
