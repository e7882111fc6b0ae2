"""palletd's malloc tuning (pallet.daemon.heap), in a child process: it changes the
process's allocator for good."""

from __future__ import annotations

import subprocess
import sys

import pytest

from pallet.daemon import heap


@pytest.mark.skipif(heap._LIBC is None, reason="not glibc")
def test_glibc_takes_both_thresholds_and_the_heap_is_given_back() -> None:
    code = (
        "from pallet.daemon import heap\n"
        "assert heap.tune(), 'mallopt refused a threshold'\n"
        "blocks = [bytearray(4 << 20) for _ in range(16)]\n"
        "del blocks\n"
        "heap.give_back()\n"
        "print('ok')\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0 and done.stdout.strip() == "ok", done.stderr
