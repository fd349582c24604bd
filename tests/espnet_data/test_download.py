"""espnet_data.download against a local HTTP server: resume, checksums, mirrors, extraction."""

from __future__ import annotations

import hashlib
import http.server
import io
import random
import re
import tarfile
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from espnet_data.download import (
    ChecksumError,
    DownloadError,
    download,
    extract_archive,
    fetch,
    md5sum,
)


class Server:
    """Serves ``files`` (name -> bytes) on 127.0.0.1 with HTTP Range support.

    ``cut_after``: name -> byte count at which the first response for that file stops
    (the connection closes mid-body, as when a transfer is interrupted).
    ``no_range``: answer every request with the whole file (a server without Range).
    """

    def __init__(self) -> None:
        self.files: dict[str, bytes] = {}
        self.cut_after: dict[str, int] = {}
        self.no_range = False
        self.requests: list[tuple[str, str | None]] = []
        server = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def log_message(self, *args: object) -> None:
                pass

            def do_GET(self) -> None:  # noqa: N802 (http.server's name)
                name = self.path.rsplit("/", 1)[-1]
                wanted = self.headers.get("Range")
                server.requests.append((name, wanted))
                if name not in server.files:
                    self.send_error(404)
                    return
                data = server.files[name]
                start = 0
                match = re.fullmatch(r"bytes=(\d+)-", wanted or "")
                if match and not server.no_range:
                    start = int(match.group(1))
                    if start >= len(data):
                        self.send_response(416)
                        self.send_header("Content-Range", f"bytes */{len(data)}")
                        self.send_header("Content-Length", "0")
                        self.end_headers()
                        return
                    self.send_response(206)
                    self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
                else:
                    self.send_response(200)
                body = data[start:]
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                cut = server.cut_after.pop(name, None)
                if cut is not None:
                    self.wfile.write(body[:cut])
                    self.wfile.flush()
                    self.close_connection = True
                    return
                self.wfile.write(body)

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/resources/12"
        self.thread = threading.Thread(target=self.httpd.serve_forever, args=(0.05,), daemon=True)

    def count(self, name: str) -> int:
        return sum(1 for n, _ in self.requests if n == name)


@pytest.fixture
def server() -> Iterator[Server]:
    srv = Server()
    srv.thread.start()
    try:
        yield srv
    finally:
        srv.httpd.shutdown()
        srv.httpd.server_close()


def make_tarball(members: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


PAYLOAD = bytes(range(256)) * 400  # 100 KiB
PAYLOAD_MD5 = hashlib.md5(PAYLOAD).hexdigest()


def test_downloads_and_verifies(server: Server, tmp_path: Path) -> None:
    server.files["a.bin"] = PAYLOAD
    dest = download(f"{server.url}/a.bin", tmp_path / "a.bin", md5=PAYLOAD_MD5, size=len(PAYLOAD))
    assert dest.read_bytes() == PAYLOAD
    assert not (tmp_path / "a.bin.part").exists()
    assert md5sum(dest) == PAYLOAD_MD5
    # present and verified: nothing is fetched again
    download(f"{server.url}/a.bin", dest, md5=PAYLOAD_MD5)
    assert server.count("a.bin") == 1


def test_interrupted_download_resumes_with_range(server: Server, tmp_path: Path) -> None:
    server.files["a.bin"] = PAYLOAD
    server.cut_after["a.bin"] = 30_000
    # no retries: the first call stops with the bytes kept in the .part file
    with pytest.raises(DownloadError, match=r"run again to resume"):
        download(f"{server.url}/a.bin", tmp_path / "a.bin", md5=PAYLOAD_MD5, retries=0)
    part = tmp_path / "a.bin.part"
    assert part.stat().st_size == 30_000 and not (tmp_path / "a.bin").exists()
    dest = download(f"{server.url}/a.bin", tmp_path / "a.bin", md5=PAYLOAD_MD5)
    assert dest.read_bytes() == PAYLOAD
    assert server.requests[-1] == ("a.bin", "bytes=30000-")


def test_retry_resumes_within_one_call(server: Server, tmp_path: Path) -> None:
    server.files["a.bin"] = PAYLOAD
    server.cut_after["a.bin"] = 12_345
    dest = download(f"{server.url}/a.bin", tmp_path / "a.bin", md5=PAYLOAD_MD5, retry_wait=0)
    assert dest.read_bytes() == PAYLOAD
    assert [r for _, r in server.requests] == [None, "bytes=12345-"]


def test_complete_part_file_is_finished_without_a_body(server: Server, tmp_path: Path) -> None:
    server.files["a.bin"] = PAYLOAD
    (tmp_path / "a.bin.part").write_bytes(PAYLOAD)  # killed between the transfer and rename
    dest = download(f"{server.url}/a.bin", tmp_path / "a.bin", md5=PAYLOAD_MD5)
    assert dest.read_bytes() == PAYLOAD
    assert server.requests == [("a.bin", f"bytes={len(PAYLOAD)}-")]  # answered 416


def test_server_without_range_restarts_from_zero(server: Server, tmp_path: Path) -> None:
    server.files["a.bin"] = PAYLOAD
    server.no_range = True
    (tmp_path / "a.bin.part").write_bytes(PAYLOAD[:5000])
    dest = download(f"{server.url}/a.bin", tmp_path / "a.bin", md5=PAYLOAD_MD5)
    assert dest.read_bytes() == PAYLOAD  # not the 5000 bytes twice


def test_checksum_mismatch_is_a_clear_error_and_discards_the_file(
    server: Server, tmp_path: Path
) -> None:
    server.files["a.bin"] = PAYLOAD
    with pytest.raises(ChecksumError, match=rf"md5 {PAYLOAD_MD5} != expected 0+.*deleted"):
        download(f"{server.url}/a.bin", tmp_path / "a.bin", md5="0" * 32)
    assert not (tmp_path / "a.bin").exists() and not (tmp_path / "a.bin.part").exists()
    with pytest.raises(ChecksumError, match="sha256"):
        download(f"{server.url}/a.bin", tmp_path / "a.bin", sha256="f" * 64)


def test_existing_file_with_wrong_checksum_is_not_overwritten(tmp_path: Path) -> None:
    (tmp_path / "a.bin").write_bytes(b"something else")
    with pytest.raises(ChecksumError, match=r"exists but does not match.*delete it"):
        download("http://127.0.0.1:9/a.bin", tmp_path / "a.bin", md5=PAYLOAD_MD5)
    assert (tmp_path / "a.bin").read_bytes() == b"something else"


def test_missing_file_is_not_retried(server: Server, tmp_path: Path) -> None:
    with pytest.raises(DownloadError, match="HTTP 404"):
        download(f"{server.url}/nope.bin", tmp_path / "nope.bin", retry_wait=0)
    assert server.count("nope.bin") == 1


def test_fetch_falls_back_to_a_mirror(server: Server, tmp_path: Path) -> None:
    server.files["a.bin"] = PAYLOAD
    dead = "http://127.0.0.1:9/resources/12"  # nothing listens on the discard port
    dest = fetch("a.bin", [dead, server.url], tmp_path, md5=PAYLOAD_MD5, retries=0, timeout=5)
    assert dest == tmp_path / "a.bin" and dest.read_bytes() == PAYLOAD
    with pytest.raises(DownloadError, match=r"any URL:\n.*127.0.0.1:9"):
        fetch("b.bin", [dead], tmp_path, retries=0, timeout=5)


def test_extract_archive_merges_into_existing_folders(tmp_path: Path) -> None:
    first = tmp_path / "one.tar.gz"
    first.write_bytes(make_tarball({"Corpus/README.TXT": b"v1", "Corpus/one/x.txt": b"x"}))
    second = tmp_path / "two.tar.gz"
    second.write_bytes(make_tarball({"Corpus/README.TXT": b"v2", "Corpus/two/y.txt": b"y"}))
    out = tmp_path / "out"
    assert extract_archive(first, out) == [out / "Corpus"]
    moved = extract_archive(second, out)
    assert sorted(moved) == [out / "Corpus" / "README.TXT", out / "Corpus" / "two"]
    assert (out / "Corpus" / "one" / "x.txt").read_bytes() == b"x"
    assert (out / "Corpus" / "two" / "y.txt").read_bytes() == b"y"
    assert (out / "Corpus" / "README.TXT").read_bytes() == b"v2"
    assert [p.name for p in out.iterdir()] == ["Corpus"]  # no temporary folder left


def test_extract_refuses_damaged_and_unsafe_archives(tmp_path: Path) -> None:
    broken = tmp_path / "broken.tar.gz"
    noise = random.Random(0).randbytes(50_000)  # incompressible: cutting the gzip stream hurts
    broken.write_bytes(make_tarball({"C/a.txt": noise})[:20_000])
    with pytest.raises(DownloadError, match=r"damaged.*download it again"):
        extract_archive(broken, tmp_path / "out")
    evil = tmp_path / "evil.tar.gz"
    evil.write_bytes(make_tarball({"../outside.txt": b"no"}))
    with pytest.raises(DownloadError):
        extract_archive(evil, tmp_path / "out")
    assert not (tmp_path / "outside.txt").exists()
    assert list((tmp_path / "out").iterdir()) == []


# --- issue 21: no https -> http downgrade; a sha256 recorded on first use ------------


def test_a_redirect_from_https_to_http_is_refused() -> None:
    import urllib.request

    from espnet_data.download import _NoDowngrade

    handler = _NoDowngrade()
    request = urllib.request.Request("https://example.org/corpus.tar.gz")
    with pytest.raises(DownloadError, match="redirects to http://example.org/x.tar.gz, which is not https"):
        handler.redirect_request(request, None, 302, "Found", {}, "http://example.org/x.tar.gz")
    moved = handler.redirect_request(request, None, 302, "Found", {}, "https://mirror.org/x.tar.gz")
    assert moved is not None and moved.full_url == "https://mirror.org/x.tar.gz"
    plain = urllib.request.Request("http://example.org/corpus.tar.gz")
    assert handler.redirect_request(plain, None, 301, "Moved", {}, "http://b.org/c") is not None


def test_record_sha256_keeps_the_first_digest_and_checks_later_downloads(
    server: Server, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    server.files["a.bin"] = PAYLOAD
    url, dest = f"{server.url}/a.bin", tmp_path / "a.bin"
    with caplog.at_level("WARNING", logger="espnet_data.download"):
        download(url, dest, record_sha256=True)
    digest = hashlib.sha256(PAYLOAD).hexdigest()
    record = tmp_path / "a.bin.sha256"
    assert record.read_text() == f"{digest}  a.bin\n"
    assert any("no published checksum" in r.getMessage() for r in caplog.records)
    assert download(url, dest, record_sha256=True) == dest  # present and matching: kept
    dest.unlink()
    server.files["a.bin"] = PAYLOAD[::-1]
    with pytest.raises(ChecksumError, match=r"recorded in .*a\.bin\.sha256 on the first download"):
        download(url, dest, record_sha256=True)
    assert not dest.exists() and not (tmp_path / "a.bin.part").exists()


def test_a_checked_download_records_its_sha256_without_a_warning(
    server: Server, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    server.files["a.bin"] = PAYLOAD
    with caplog.at_level("WARNING", logger="espnet_data.download"):
        download(f"{server.url}/a.bin", tmp_path / "a.bin", md5=PAYLOAD_MD5, record_sha256=True)
    assert (tmp_path / "a.bin.sha256").read_text().split()[0] == hashlib.sha256(PAYLOAD).hexdigest()
    assert not caplog.records


def test_a_damaged_record_is_a_clear_error(server: Server, tmp_path: Path) -> None:
    server.files["a.bin"] = PAYLOAD
    (tmp_path / "a.bin.sha256").write_text("not-a-digest\n")
    with pytest.raises(DownloadError, match=r"a\.bin\.sha256 should hold the sha256.*'not-a-digest'.*delete it"):
        download(f"{server.url}/a.bin", tmp_path / "a.bin", record_sha256=True)
