"""palletd's use of glibc's malloc for buffers of megabytes (a cp, an import, a load).

Owns: `tune`, the two thresholds set once at start-up, and `give_back`, which returns the
heap's free pages to the kernel once a big transfer is over. Must not: be called by the
shim or the cp helper (they are other processes, with their own heaps), or change
anything on a libc that is not glibc (then both do nothing).

Why: a cp into a container moves each byte through several multi-MiB buffers in palletd
(grpc's receive slices, the message, the pipe to the helper). With glibc's defaults a
freed buffer at the top of a thread's heap is given back at once (madvise), and the next
receive faults every page of it in again, zero-filled: a quarter of palletd's CPU for a
gigabyte copied in went to those page faults. With the thresholds raised the pages stay
mapped while the copy runs; `give_back` returns them when it is over, so an idle palletd
holds no more than it did.
"""

from __future__ import annotations

import ctypes
import ctypes.util

#: mallopt's parameters (malloc.h).
M_TRIM_THRESHOLD = -1
M_MMAP_THRESHOLD = -3
#: Blocks this big or bigger get an mmap of their own (glibc's largest allowed value on
#: 64-bit, 32 MiB: a cp's 4 MiB messages stay in the heap).
MMAP_THRESHOLD = 32 << 20
#: Free memory at the top of a heap kept for reuse, up to this much (thread heaps are at
#: most 64 MiB).
TRIM_THRESHOLD = 64 << 20


def _glibc() -> ctypes.CDLL | None:
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or None)
        libc.mallopt  # noqa: B018 - glibc has it; musl does not
        libc.malloc_trim  # noqa: B018
    except (OSError, AttributeError):
        return None
    return libc


_LIBC = _glibc()


def tune() -> bool:
    """Set the thresholds (before the server starts); False when not glibc."""
    if _LIBC is None:
        return False
    ok = _LIBC.mallopt(ctypes.c_int(M_MMAP_THRESHOLD), ctypes.c_int(MMAP_THRESHOLD))
    ok &= _LIBC.mallopt(ctypes.c_int(M_TRIM_THRESHOLD), ctypes.c_int(TRIM_THRESHOLD))
    return bool(ok)


def give_back() -> None:
    """Return every heap's free pages to the kernel (blocks for a few ms: run it off
    the event loop)."""
    if _LIBC is not None:
        _LIBC.malloc_trim(ctypes.c_size_t(0))
