"""palletd with timers on its network calls: `python bench/timed_palletd.py PALLETD-ARGS`.

Owns: wrapping a fixed list of the networks' methods (the manager's attach and release,
and what they call: the kernel, the lease writes, the firewall, the resolver's records)
with a timer, then running palletd's own `main` in this process. Each call appends one
JSON line to the file named by $PALLET_BENCH_TIMINGS: the method, the outer call it ran
under (attach or release, through a context variable, which asyncio.to_thread carries
into its thread), the container, and the milliseconds. Must not: change what palletd
does; anything the wrappers cannot tell is left out, never guessed.

bench/net.py starts palletd this way to read palletd's own figures for network attach
and teardown. A timer costs a few microseconds (a perf_counter pair and one write).
"""

from __future__ import annotations

import contextvars
import functools
import importlib
import inspect
import json
import os
import sys
import threading
import time
from typing import Any

#: (module, class, method) of every timed call. The manager's attach and release are the
#: outer calls; the rest are what they spend their time in.
TIMED: tuple[tuple[str, str, str], ...] = (
    ("pallet.daemon.containers.start", "ContainerStart", "attach_network"),
    ("pallet.daemon.containers.start", "ContainerStart", "mount_volumes"),
    ("pallet.daemon.networks.manager", "NetworkManager", "attach"),
    ("pallet.daemon.networks.manager", "NetworkManager", "release"),
    ("pallet.daemon.networks.rebuild", "Rebuilds", "sync"),
    ("pallet.daemon.networks.rebuild", "Rebuilds", "_apply"),
    ("pallet.daemon.networks.manager", "NetworkManager", "_resolv_conf"),
    ("pallet.daemon.networks.manager", "NetworkManager", "_reserve_ports"),
    ("pallet.daemon.networks.kernel", "NetKernel", "make_netns"),
    ("pallet.daemon.networks.kernel", "NetKernel", "attach"),
    ("pallet.daemon.networks.kernel", "NetKernel", "remove_netns"),
    ("pallet.daemon.networks.store", "NetworkRecords", "write"),
    ("pallet.daemon.networks.firewall", "Firewall", "apply"),
    ("pallet.daemon.networks.firewall", "Firewall", "_user_chain_exists"),
    ("pallet.daemon.networks.nft", "Libnftables", "run"),
    ("pallet.daemon.networks.dns", "DnsSupervisor", "publish"),
    ("pallet.daemon.networks.dns", "DnsSupervisor", "_write"),
)
#: Module-level functions the manager looks up at call time.
TIMED_FUNCTIONS: tuple[tuple[str, str], ...] = (
    ("pallet.daemon.networks.rebuild", "read_resolv_conf"),
    ("pallet.daemon.networks.etcfiles", "read_resolv_conf"),
)
OUTER = {"NetworkManager.attach", "NetworkManager.release"}

_outer: contextvars.ContextVar[str] = contextvars.ContextVar("outer", default="")
_lock = threading.Lock()
_out: Any = None


def _record(name: str, ms: float, container: str, extra: dict[str, Any]) -> None:
    line = json.dumps({"name": name, "outer": _outer.get(), "container": container,
                       "ms": round(ms, 4), "t": time.time(), **extra})
    with _lock:
        _out.write(line + "\n")


def _container_of(args: tuple[Any, ...]) -> str:
    for a in args:
        if isinstance(a, str) and len(a) == 64:
            return a
        cid = getattr(a, "id", None)
        if isinstance(cid, str):
            return cid
        c = getattr(a, "container", None)
        if c is not None and isinstance(getattr(c, "id", None), str):
            return str(c.id)
    return ""


def _extra(name: str, self: Any, args: tuple[Any, ...]) -> dict[str, Any]:
    """What tells the calls of one method apart (a release with nothing to release)."""
    if name == "NetworkManager.release" and args:
        cid = args[0]
        return {"noop": cid not in self._attached and cid not in self._found}
    if name == "NetworkManager.attach" and args:
        return {"mode": args[0].host_config.network_mode}
    return {}


def _wrap(name: str, fn: Any) -> Any:
    if inspect.iscoroutinefunction(fn):
        @functools.wraps(fn)
        async def timed_async(self: Any, *args: Any, **kwargs: Any) -> Any:
            extra = _extra(name, self, args)
            token = _outer.set(name) if name in OUTER else None
            t0 = time.perf_counter()
            try:
                return await fn(self, *args, **kwargs)
            finally:
                ms = (time.perf_counter() - t0) * 1e3
                if token is not None:
                    _outer.reset(token)
                _record(name, ms, _container_of((self, *args)), extra)
        return timed_async

    @functools.wraps(fn)
    def timed(*args: Any, **kwargs: Any) -> Any:
        t0 = time.perf_counter()
        try:
            return fn(*args, **kwargs)
        finally:
            _record(name, (time.perf_counter() - t0) * 1e3, "", {})
    return timed


def install(path: str) -> None:
    global _out
    _out = open(path, "a", buffering=1)  # noqa: SIM115 - open for the process's life
    for module_name, cls_name, method in TIMED:
        cls = getattr(importlib.import_module(module_name), cls_name)
        setattr(cls, method, _wrap(f"{cls_name}.{method}", getattr(cls, method)))
    for module_name, fn_name in TIMED_FUNCTIONS:
        module = importlib.import_module(module_name)
        setattr(module, fn_name, _wrap(fn_name, getattr(module, fn_name)))


def main() -> None:
    install(os.environ["PALLET_BENCH_TIMINGS"])
    from pallet.daemon.main import main as palletd_main

    sys.argv[0] = "palletd"
    palletd_main(sys.argv[1:])


if __name__ == "__main__":
    main()
