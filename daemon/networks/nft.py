"""A small ctypes binding to libnftables: run an nft script in-process, in one transaction.

Owns: loading libnftables.so.1, one `nft_ctx` per `Libnftables`, running a buffer of nft
commands with output and errors captured, and turning a failure into pallet's errors.
Must not: decide what the rules are (that is `firewall.py`), start an `nft` process, or be
used from two threads at once without its lock (an `nft_ctx` is not thread-safe).

libnftables parses a whole buffer and sends it to the kernel as one netlink batch: every
command in it is applied, or none is. The netlink socket belongs to the network namespace
of the thread that created the context (on first use), so the namespace a `Libnftables`
acts on is fixed then.
"""

from __future__ import annotations

import ctypes
import threading
from typing import Protocol

from pallet.v1.errors import FailedPrecondition, Internal

LIBRARY = "libnftables.so.1"

#: nft_ctx_new flags: NFT_CTX_DEFAULT (the only one there is).
_NFT_CTX_DEFAULT = 0

#: What the kernel says when nf_tables (or an expression module a rule needs: nat, fib,
#: masq, ct) is not there: the host cannot run pallet's rules, no retry helps.
_MISSING_KERNEL_SUPPORT = ("Protocol not supported", "Operation not supported")


class NftRunner(Protocol):
    """Runs an nft script as one transaction; the seam `Firewall` is tested through."""

    def run(self, script: str) -> str:
        """Run `script`; return nft's output; raise Internal/FailedPrecondition on error."""
        ...


class Libnftables:
    """libnftables through ctypes: `run` is one `nft_run_cmd_from_buffer` call."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._lib: ctypes.CDLL | None = None
        self._ctx: int | None = None

    def run(self, script: str) -> str:
        with self._lock:
            lib, ctx = self._context()
            rc = lib.nft_run_cmd_from_buffer(ctx, script.encode())
            output = _text(lib.nft_ctx_get_output_buffer(ctx))
            error = _text(lib.nft_ctx_get_error_buffer(ctx))
        if rc != 0:
            message = error.strip() or f"nft failed with status {rc} and no message"
            if any(text in message for text in _MISSING_KERNEL_SUPPORT):
                raise FailedPrecondition(
                    f"the kernel refused pallet's nftables rules ({message}): pallet needs"
                    " nf_tables with the nat, fib, masq and ct expressions (modules"
                    " nf_tables, nft_nat, nft_fib_ipv4, nft_masq, nft_ct)"
                )
            raise Internal(f"nftables refused pallet's rules: {message}")
        return output

    def close(self) -> None:
        """Free the context (the next `run` makes a new one)."""
        with self._lock:
            if self._lib is not None and self._ctx is not None:
                self._lib.nft_ctx_free(self._ctx)
            self._ctx = None

    def _context(self) -> tuple[ctypes.CDLL, int]:
        if self._lib is None:
            self._lib = _load()
        if self._ctx is None:
            ctx = self._lib.nft_ctx_new(_NFT_CTX_DEFAULT)
            if not ctx:
                raise FailedPrecondition("libnftables could not make a context (nft_ctx_new)")
            # Capture output and errors in buffers instead of letting them go to stdout.
            if self._lib.nft_ctx_buffer_output(ctx) != 0 or self._lib.nft_ctx_buffer_error(ctx) != 0:
                self._lib.nft_ctx_free(ctx)
                raise Internal("libnftables could not buffer its output")
            self._lib.nft_ctx_output_set_flags(ctx, 0)
            self._ctx = int(ctx)
        return self._lib, self._ctx


def _load() -> ctypes.CDLL:
    try:
        lib = ctypes.CDLL(LIBRARY)
    except OSError as exc:
        raise FailedPrecondition(
            f"cannot load {LIBRARY} ({exc}): install it (Debian: apt-get install libnftables1)"
        ) from exc
    lib.nft_ctx_new.restype = ctypes.c_void_p
    lib.nft_ctx_new.argtypes = [ctypes.c_uint32]
    lib.nft_ctx_free.restype = None
    lib.nft_ctx_free.argtypes = [ctypes.c_void_p]
    lib.nft_ctx_buffer_output.restype = ctypes.c_int
    lib.nft_ctx_buffer_output.argtypes = [ctypes.c_void_p]
    lib.nft_ctx_buffer_error.restype = ctypes.c_int
    lib.nft_ctx_buffer_error.argtypes = [ctypes.c_void_p]
    lib.nft_ctx_get_output_buffer.restype = ctypes.c_char_p
    lib.nft_ctx_get_output_buffer.argtypes = [ctypes.c_void_p]
    lib.nft_ctx_get_error_buffer.restype = ctypes.c_char_p
    lib.nft_ctx_get_error_buffer.argtypes = [ctypes.c_void_p]
    lib.nft_ctx_output_set_flags.restype = None
    lib.nft_ctx_output_set_flags.argtypes = [ctypes.c_void_p, ctypes.c_uint]
    lib.nft_run_cmd_from_buffer.restype = ctypes.c_int
    lib.nft_run_cmd_from_buffer.argtypes = [ctypes.c_void_p, ctypes.c_char_p]
    return lib


def _text(raw: bytes | None) -> str:
    return raw.decode(errors="replace") if raw else ""
