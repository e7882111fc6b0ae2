"""Renaming a container: `rename` (docker rename).

Owns: `Renames`, the part of the container manager that checks a new name (create's rules,
`names.validate_name`; not the container's own; no other container's), writes it with the
`rename` event in one transaction (`store.rename_writer`: the record's name column and the
event together, so a kill -9 of palletd leaves the old name or the new one, never both or
neither, and the event only with the new name), then has the networks answer the new
name in DNS (`Networking.rename`). Must not: touch the DNS records itself, or hold state of
its own: it works on the manager's.

The order is record, then DNS: the record is what a restarted palletd rebuilds the DNS
records from (`NetworkManager.reconcile`), so a crash between the two is put right at boot.
A running container keeps its hostname, /etc/hosts and processes: docker renames only the
name (and its DNS names).
"""

from __future__ import annotations

import asyncio
import sqlite3
from dataclasses import replace
from typing import TYPE_CHECKING, Any

from pallet.daemon.containers.model import Container, Status
from pallet.daemon.containers.names import validate_name
from pallet.daemon.containers.networking import Networking
from pallet.daemon.containers.store import rename_writer
from pallet.daemon.events.model import EventPublisher
from pallet.daemon.faults import CrashHook
from pallet.v1.errors import AlreadyExists, FailedPrecondition, InvalidArgument, NotFound


def name_in_use(name: str, owner_id: str) -> AlreadyExists:
    """docker's words for a rename to a name another container has."""
    return AlreadyExists(
        f'Error when allocating new name: Conflict. The container name "/{name}" is already '
        f'in use by container "{owner_id}". You have to remove (or rename) that container '
        "to be able to reuse that name."
    )


class Renames:
    """Renames containers (mixed into `ContainerManager`)."""

    _containers: dict[str, Container]
    _reserved_names: set[str]
    _events: EventPublisher
    _networking: Networking
    _crashes: CrashHook

    if TYPE_CHECKING:  # the manager's methods this part calls

        def resolve(self, ref: str) -> Container: ...

        def lock(self, container_id: str) -> asyncio.Lock: ...

        def _attrs(self, c: Container, **extra: str) -> dict[str, str]: ...

        def _check_not_removing(self, c: Container) -> None: ...

        async def write_held(self, container_id: str) -> Any: ...

    async def rename(self, ref: str, new_name: str) -> Container:
        """`ref` is called `new_name` from now on; the renamed container."""
        new_name = new_name.strip()
        if not new_name.lstrip("/") or not ref.strip().lstrip("/"):
            raise InvalidArgument("Neither old nor new names may be empty")
        name = validate_name(new_name)
        c = self.resolve(ref.strip())
        async with self.lock(c.id):
            current = self._containers.get(c.id)
            if current is None:  # removed while this waited for the lock
                raise NotFound(f"No such container: {ref}")
            c = current
            self._check_not_removing(c)
            if c.state.status is Status.REMOVING:
                raise FailedPrecondition(f"container {c.name} is being removed: it cannot be renamed")
            if c.name == name:
                raise InvalidArgument("Renaming a container with the same name as its current name")
            owner = next((o for o in self._containers.values() if o.name == name), None)
            if owner is not None:
                raise name_in_use(name, owner.id)
            if name in self._reserved_names:
                raise AlreadyExists(
                    f'the container name "/{name}" is being taken by a create or rename '
                    "under way: choose another name"
                )
            renamed = replace(c, name=name)
            self._reserved_names.add(name)
            try:
                # An end held in memory (a full disk) is written first: events stay in order.
                await self.write_held(c.id)
                await self._events.publish(
                    "container", "rename", c.id, self._attrs(renamed, oldName="/" + c.name),
                    also=rename_writer(renamed),
                )
            except sqlite3.IntegrityError:
                # The name column's UNIQUE constraint (a record this palletd has not loaded).
                raise AlreadyExists(
                    f'the container name "/{name}" is already in use: choose another name'
                ) from None
            finally:
                self._reserved_names.discard(name)
            self._containers[c.id] = renamed
            self._crashes.hit("rename", "recorded")  # the DNS records not yet
            await self._networking.rename(renamed)
            return renamed
