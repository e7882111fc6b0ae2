"""What `pallet-shim delete` reports: the result of cleaning up after a dead shim.

Owns: `DeleteResult`, printed by `pallet-shim delete` as one JSON line (through
`pallet.shim.api.codec`) and read back by the daemon. Must not: do I/O.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class DeleteResult:
    """What `pallet-shim delete` found and removed."""

    killed: tuple[int, ...] = ()  # processes still in the container's cgroup, now killed
    cgroups_removed: tuple[str, ...] = ()  # the container's cgroup directories it removed
    cgroups_left: tuple[str, ...] = ()  # directories still busy when it gave up
    socket_removed: bool = False  # the dead shim's socket was there and is gone
