"""What follows the end of a container's run: one pure decision for every way a run ends.

Owns: `Why` (how the end was learned: the monitor saw the process exit, the start failed,
the restorer found the exit after palletd was down, or a user's stop/kill ended it),
`Outcome` (what the manager does next) and `after_exit`, the decision itself. Must not:
act (the container manager's one executor does, for the monitor, a failed start and the
restorer alike), read the clock or anything but its arguments, so it is unit-tested as a
table (tests/unit/test_container_exits.py). Also `of_this_run`, the one check every
reader of an exit status from disk applies.

Restart policies (`--restart`, with back-off) become one more `Outcome` decided here; `why`
is what they need (docker: `unless-stopped` never restarts a container a user stopped,
`on-failure` looks at the exit code, a failed start counts as a failure).
"""

from __future__ import annotations

import enum

from pallet.daemon.containers.model import Container
from pallet.shim.api.spec import ExitStatus


class Why(enum.Enum):
    """How the run ended, as far as palletd knows."""

    EXITED = "exited"  # the monitor saw the process exit by itself
    STOPPED = "stopped"  # it exited after a user's stop or kill
    START_FAILED = "start-failed"  # the start did not get the process running
    FOUND_EXITED = "found-exited"  # it ended while palletd was down; found when restoring


class Outcome(enum.Enum):
    """What follows the recorded end of a run."""

    NOTHING = "nothing"  # the container stays, exited (or created, after a failed start)
    REMOVE = "remove"  # `run --rm` / auto_remove: the container is removed


def after_exit(container: Container, exit: ExitStatus, why: Why) -> Outcome:
    """What follows `container`'s run ending with `exit`, learned as `why`.

    `--rm` removes the container however its run ended, as docker does: after a failed
    start, a user's stop, and an exit that happened while palletd was down, too.
    """
    if container.host_config.auto_remove:
        return Outcome.REMOVE
    return Outcome.NOTHING


def of_this_run(on_disk: ExitStatus | None, started_at_ns: int) -> ExitStatus | None:
    """`on_disk` if it is the exit of the run that started at `started_at_ns`, else None.

    exit.json stays in the bundle after a run; the shim (and the daemon, before it spawns
    one) removes it when the next run's container is created. This is the backstop for a
    status that survived anyway: one that ended before this run started is the previous
    run's, and taking it for this run's would report a dead shim's container as exited
    with the old code (and skip cleaning up after the shim).
    """
    if on_disk is None or on_disk.exited_at_ns < started_at_ns:
        return None
    return on_disk
