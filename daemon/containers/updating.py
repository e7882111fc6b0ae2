"""Changing a container's limits and restart policy: `update`.

Owns: `Updates`, the part of the container manager that takes new limits for a container
(checked all together first: one bad value changes none), applies them to a running
container's cgroup through its shim (which puts back what was there when the kernel
refuses one), and stores them with an `update` event, so every later start applies them.
A new restart policy is checked as at create (`restarts.check_policy`) and kept; "no"
ends a back-off under way (`restarting.Restarting.end_backoff`).
Must not: check a limit itself (`pallet.daemon.containers.resources` does) or write a
cgroup (the shim does), or hold state of its own: it works on the manager's.

The order is apply, then record: a record that says a limit the cgroup does not have
would be a lie; if the record cannot be written, the old limits are applied again.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from dataclasses import replace
from typing import TYPE_CHECKING, Any

import structlog

from pallet.daemon.containers import resources, restarts
from pallet.daemon.containers.model import RESTART_NO, Container, Resources, RestartPolicy, Status
from pallet.daemon.containers.sessions import Run
from pallet.daemon.containers.store import update_writer
from pallet.daemon.events.model import EventPublisher
from pallet.v1.errors import FailedPrecondition, PalletError

log = structlog.get_logger(__name__)


class Updates:
    """Updates containers' limits (mixed into `ContainerManager`)."""

    _containers: dict[str, Container]
    _runs: dict[str, Run]
    _events: EventPublisher

    if TYPE_CHECKING:  # the manager's methods this part calls

        def resolve(self, ref: str) -> Container: ...

        def lock(self, container_id: str) -> asyncio.Lock: ...

        def _attrs(self, c: Container, **extra: str) -> dict[str, str]: ...

        async def write_held(self, container_id: str) -> Any: ...

        async def end_backoff(self, c: Container, by_user: bool) -> Container: ...

    async def update(
        self, ref: str, changes: Mapping[str, Any], restart_policy: RestartPolicy | None = None
    ) -> Container:
        """New limits for `ref` (field name of `Resources` -> value, only those given):
        live on a running (or paused) container, and kept for its next starts; and a new
        restart policy (None: the one it has), read at its next end."""
        c = self.resolve(ref)
        async with self.lock(c.id):
            c = self._containers.get(c.id, c)
            if c.state.status in (Status.REMOVING, Status.DEAD):
                raise FailedPrecondition(f"container {c.name} is {c.state.status.value}: it cannot be updated")
            policy = c.host_config.restart_policy
            if restart_policy is not None:
                policy = restarts.check_policy(restart_policy, c.host_config.auto_remove)
            old = c.host_config.resources
            new = await asyncio.to_thread(resources.updated, old, changes, resources.host_facts())
            run = self._runs.get(c.id)
            live = run is not None and c.state.status in (Status.RUNNING, Status.PAUSED)
            if live and new != old:
                assert run is not None
                await run.shim.update(await asyncio.to_thread(resources.spec_resources, new))
            updated = replace(c, host_config=replace(
                c.host_config, resources=new, restart_policy=policy
            ))
            try:
                await self.write_held(c.id)
                await self._events.publish(
                    "container", "update", c.id, self._attrs(c), also=update_writer(updated)
                )
            except BaseException:
                if live and new != old:
                    assert run is not None
                    await asyncio.shield(_put_back(run, old, c.id))
                raise
            self._containers[c.id] = updated
            if updated.state.status is Status.RESTARTING and policy.name == RESTART_NO:
                updated = await self.end_backoff(updated, by_user=False)
            return updated


async def _put_back(run: Run, old: Resources, container_id: str) -> None:
    try:
        await run.shim.update(await asyncio.to_thread(resources.spec_resources, old))
    except PalletError as e:
        log.warning("cannot put back the limits of a container whose update was not recorded",
                    container_id=container_id, reason=str(e))
