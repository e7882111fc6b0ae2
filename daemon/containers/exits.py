"""What follows the end of a container's run: one pure decision for every way a run ends.

Owns: `Why` (how the end was learned: the monitor saw the process exit, the start failed,
the restorer found the exit after palletd was down, or a user's stop/kill ended it),
`Outcome` (what the manager does next) and `after_exit`, the decision itself. Must not:
act (the container manager's one executor does, for the monitor, a failed start and the
restorer alike), read the clock or anything but its arguments, so it is unit-tested as a
table (tests/unit/test_container_exits.py). Also `of_this_run`, the one check every
reader of an exit status from disk applies.

Restart policies (`--restart`) are one more `Outcome`, RESTART, decided here with
`restarts.should_restart`; `why` tells a user's stop from an exit, and a user's failed
start (its error is theirs: no restart, as docker) from a restart's (the back-off goes on).
When the back-off ends is `restarts.plan`'s, read by the executor.
"""

from __future__ import annotations

import enum

from pallet.daemon.containers import restarts
from pallet.daemon.containers.model import RESTART_ALWAYS, Container, Status
from pallet.shim.api.spec import ExitStatus


class Why(enum.Enum):
    """How the run ended, as far as palletd knows."""

    EXITED = "exited"  # the monitor saw the process exit by itself
    STOPPED = "stopped"  # it exited after a user's stop or kill
    START_FAILED = "start-failed"  # the start did not get the process running
    FOUND_EXITED = "found-exited"  # it ended while palletd was down; found when restoring
    RECORDED = "recorded"  # an end recorded before palletd started, settled again at boot


class Outcome(enum.Enum):
    """What follows the recorded end of a run."""

    NOTHING = "nothing"  # the container stays, exited (or created, after a failed start)
    REMOVE = "remove"  # `run --rm` / auto_remove: the container is removed
    RESTART = "restart"  # its restart policy starts it again, after a back-off


def after_exit(container: Container, exit: ExitStatus, why: Why) -> Outcome:
    """What follows `container`'s run ending with `exit`, learned as `why`.

    `--rm` removes the container however its run ended, as docker does: after a failed
    start, a user's stop, and an exit that happened while palletd was down, too.

    A restart policy (never with --rm) restarts by `restarts.should_restart`, with the
    boot rules: at boot `always` restarts even a container a user stopped, and an end
    recorded before palletd started (`RECORDED`) is restarted only by `always` and
    `unless-stopped` (`restarts.start_at_boot`); one whose exit it missed, by its policy.
    """
    if container.host_config.auto_remove:
        return Outcome.REMOVE
    policy = container.host_config.restart_policy
    if why is Why.START_FAILED and container.state.status is not Status.RESTARTING:
        return Outcome.NOTHING  # a user's start failed: they hear of it; no restarts
    if why is Why.RECORDED:
        boot = restarts.start_at_boot(policy, container.restarts)
        return Outcome.RESTART if boot else Outcome.NOTHING
    by_user = why is Why.STOPPED or container.restarts.stopped_by_user
    if why is Why.FOUND_EXITED and policy.name == RESTART_ALWAYS:
        by_user = False
    if restarts.should_restart(policy, exit.exit_code, by_user, container.restart_count):
        return Outcome.RESTART
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
