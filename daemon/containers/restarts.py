"""Restart policies: which runs are followed by a restart, and when (docker's rules).

Owns: checking a `RestartPolicy` (`check_policy`), whether a run's end calls for a
restart (`should_restart`), the back-off (`next_delay`: from 100 ms, doubled at each
restart up to one minute, back to 100 ms after a run of 10 s or more), the plan of the next
attempt (`plan`: when it is due, from the run's exit), how long until it is due
(`wait_s`) and which containers palletd starts again when it boots (`start_at_boot`).
Must not: act, read the clock or anything but its arguments: `exits.after_exit` asks it,
the container manager (`runs.RunEnds`) acts, and tests/unit/test_restart_policy.py checks
it with a fake clock.
"""

from __future__ import annotations

from pallet.daemon.containers.model import (
    RESTART_ALWAYS,
    RESTART_NO,
    RESTART_ON_FAILURE,
    RESTART_POLICIES,
    RESTART_UNLESS_STOPPED,
    RestartPolicy,
    RestartState,
)
from pallet.shim.api.spec import ExitStatus
from pallet.v1.errors import InvalidArgument

MS = 1_000_000
S = 1_000 * MS
# docker's restart manager: the first wait, its growth, its cap, and the run length
# that counts as a success (the wait starts over).
INITIAL_DELAY_NS = 100 * MS
MAX_DELAY_NS = 60 * S
BACKOFF_FACTOR = 2
RESET_AFTER_NS = 10 * S


def check_policy(policy: RestartPolicy, auto_remove: bool) -> RestartPolicy:
    """The policy as stored ("" is "no"), or InvalidArgument with docker's words."""
    name = policy.name or RESTART_NO
    if name not in RESTART_POLICIES:
        raise InvalidArgument(
            f"invalid restart policy: unknown policy {name!r}; use one of 'no', 'always', "
            "'on-failure', or 'unless-stopped'"
        )
    if policy.maximum_retry_count < 0:
        raise InvalidArgument(
            "invalid restart policy: maximum retry count cannot be negative"
        )
    if policy.maximum_retry_count and name != RESTART_ON_FAILURE:
        raise InvalidArgument(
            "invalid restart policy: maximum retry count can only be used with 'on-failure'"
        )
    if auto_remove and name != RESTART_NO:
        raise InvalidArgument("Conflicting options: --restart and --rm")
    return RestartPolicy(name, policy.maximum_retry_count)


def should_restart(
    policy: RestartPolicy, exit_code: int, stopped_by_user: bool, restart_count: int
) -> bool:
    """Whether a run that ended with `exit_code` is followed by a restart.

    A user's stop or kill ends restarting under every policy until the user starts the
    container again (docker cancels its restart manager then); `on-failure` restarts a
    non-zero exit until it has restarted `maximum_retry_count` times (0: no limit).
    """
    if stopped_by_user:
        return False
    if policy.name in (RESTART_ALWAYS, RESTART_UNLESS_STOPPED):
        return True
    if policy.name == RESTART_ON_FAILURE:
        limit = policy.maximum_retry_count
        return exit_code != 0 and (limit == 0 or restart_count < limit)
    return False


def next_delay(previous_ns: int, ran_ns: int) -> int:
    """The wait before the next restart, after one of `previous_ns` and a run of `ran_ns`."""
    if ran_ns >= RESET_AFTER_NS or previous_ns <= 0:
        return INITIAL_DELAY_NS
    return min(previous_ns * BACKOFF_FACTOR, MAX_DELAY_NS)


def plan(
    state: RestartState, started_at_ns: int, exit: ExitStatus, failed_start: bool, now_ns: int
) -> RestartState:
    """The back-off after a run that started at `started_at_ns` ended with `exit`.

    The wait counts from the exit (the shim's time), never from the past: an exit palletd
    learns of late (it was down) waits what is left, and one long gone is restarted now.
    A start that failed ran for nothing, whatever the previous run's start time says.
    """
    ended = exit.exited_at_ns or now_ns
    ran = 0 if failed_start or not started_at_ns else max(0, ended - started_at_ns)
    delay = next_delay(state.delay_ns, ran)
    return RestartState(delay_ns=delay, next_at_ns=max(now_ns, ended + delay))


def wait_s(state: RestartState, now_ns: int) -> float:
    """Seconds until the planned restart is due (0 when it is)."""
    return max(0, state.next_at_ns - now_ns) / S


def start_at_boot(policy: RestartPolicy, state: RestartState) -> bool:
    """Whether palletd starts an exited container again when it boots (docker's rule):
    `always` ones even when a user stopped them, `unless-stopped` ones only when not."""
    if policy.name == RESTART_ALWAYS:
        return True
    return policy.name == RESTART_UNLESS_STOPPED and not state.stopped_by_user
