"""Leases: what an unfinished import or load has written and must keep.

Owns: the set of blobs and layers each in-progress operation has put in place but not yet
recorded in the database, and the lock that makes "is it leased?" and "delete it" one step.
Must not: touch disk or the database.

Blobs and layers are written before the records that point at them (so a record never
points at nothing). Between those two moments they look unused; a lease, as in containerd,
keeps the garbage collector's hands off them until the records are committed or the
operation fails.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field


@dataclass(eq=False, slots=True)
class Lease:
    """Blobs (digests) and layers (diff ids) one operation holds."""

    blobs: set[str] = field(default_factory=set)
    layers: set[str] = field(default_factory=set)


class Leases:
    """The registry of live leases; thread-safe (blobs are written on worker threads)."""

    def __init__(self) -> None:
        #: Held while adding to a lease together with a rename into place, and while
        #: checking leases together with a delete, so the two can never interleave.
        self.lock = threading.Lock()
        self._live: list[Lease] = []

    def acquire(self) -> Lease:
        lease = Lease()
        with self.lock:
            self._live.append(lease)
        return lease

    def release(self, lease: Lease) -> None:
        with self.lock:
            self._live = [other for other in self._live if other is not lease]

    def blob_leased(self, digest: str) -> bool:
        """Caller holds `lock`."""
        return any(digest in lease.blobs for lease in self._live)

    def layer_leased(self, diff_id: str) -> bool:
        """Caller holds `lock`."""
        return any(diff_id in lease.layers for lease in self._live)
