"""keep_freed_host_memory: large freed blocks are reused without new page faults."""

from __future__ import annotations

import platform
import subprocess
import sys

import pytest
from espnet_model import host_memory
from espnet_model.host_memory import keep_freed_host_memory

# Plain bytes, not torch: both allocate large blocks through malloc, and the probe starts
# in a fraction of the time (the module is loaded from its file: no torch import).
_PROBE = """
import importlib.util, resource, sys
spec = importlib.util.spec_from_file_location("host_memory", sys.argv[2])
module = importlib.util.module_from_spec(spec)
spec.loader.exec_module(module)
if sys.argv[1] == "keep":
    assert module.keep_freed_host_memory()
def faults():
    return resource.getrusage(resource.RUSAGE_SELF).ru_minflt
block = b"x" * (64 * 2**20)  # a 64 MB block, allocated, touched, freed
del block
before = faults()
block = b"x" * (64 * 2**20)
print(faults() - before)
"""


def _faults(mode: str) -> int:
    path = host_memory.__file__
    out = subprocess.run([sys.executable, "-c", _PROBE, mode, path], capture_output=True,
                         text=True, check=True)
    return int(out.stdout.strip().splitlines()[-1])


@pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="glibc's mallopt only")
def test_second_large_block_reuses_pages() -> None:
    # 64 MB = 16384 pages: glibc's default mmaps and zero-fills them again.
    assert _faults("default") > 8000
    assert _faults("keep") < 1000


def test_returns_bool_everywhere() -> None:
    assert isinstance(keep_freed_host_memory(), bool)
