"""Restart policies: the checks, the decision after each end of a run, the back-off, the
boot rules (`restarts`, `exits.after_exit`), with a clock that is only a number."""

from __future__ import annotations

from dataclasses import replace

import pytest

from pallet.daemon.containers import restarts
from pallet.daemon.containers.exits import Outcome, Why, after_exit
from pallet.daemon.containers.merge import host_config
from pallet.daemon.containers.model import (
    Config,
    Container,
    ContainerState,
    HostConfig,
    RestartPolicy,
    RestartState,
    Status,
)
from pallet.shim.api.spec import ExitStatus
from pallet.v1.errors import InvalidArgument

MS = restarts.MS
S = restarts.S


def container(
    name: str = "no", max: int = 0, status: Status = Status.EXITED, count: int = 0,
    by_user: bool = False,
) -> Container:
    return Container(
        id="c" * 64, name="web", image_id="sha256:" + "ab" * 32, config=Config(image="busybox"),
        host_config=HostConfig(restart_policy=RestartPolicy(name, max)),
        state=ContainerState(status=status, started_at_ns=1 * S),
        created_ns=1, state_dir="/nonexistent", restart_count=count,
        restarts=RestartState(stopped_by_user=by_user),
    )


# ---- checks (at create, in the daemon) ---------------------------------------------------


@pytest.mark.parametrize(("name", "max", "stored"), [
    ("", 0, RestartPolicy("no", 0)),
    ("no", 0, RestartPolicy("no", 0)),
    ("always", 0, RestartPolicy("always", 0)),
    ("unless-stopped", 0, RestartPolicy("unless-stopped", 0)),
    ("on-failure", 0, RestartPolicy("on-failure", 0)),
    ("on-failure", 3, RestartPolicy("on-failure", 3)),
])
def test_good_policies_are_stored_with_no_as_the_default(
    name: str, max: int, stored: RestartPolicy
) -> None:
    checked = host_config(HostConfig(restart_policy=RestartPolicy(name, max)))
    assert checked.restart_policy == stored


@pytest.mark.parametrize(("name", "max", "auto_remove", "words"), [
    ("sometimes", 0, False, "unknown policy 'sometimes'"),
    ("on-failure", -1, False, "maximum retry count cannot be negative"),
    ("always", 2, False, "can only be used with 'on-failure'"),
    ("always", 0, True, "Conflicting options: --restart and --rm"),
    ("on-failure", 1, True, "Conflicting options: --restart and --rm"),
])
def test_bad_policies_are_refused(name: str, max: int, auto_remove: bool, words: str) -> None:
    with pytest.raises(InvalidArgument, match=words):
        host_config(HostConfig(auto_remove=auto_remove, restart_policy=RestartPolicy(name, max)))


def test_rm_without_a_policy_is_fine() -> None:
    assert host_config(HostConfig(auto_remove=True)).restart_policy == RestartPolicy()


# ---- the decision --------------------------------------------------------------------------


@pytest.mark.parametrize(("name", "code", "restart"), [
    ("no", 0, False), ("no", 1, False),
    ("always", 0, True), ("always", 137, True),
    ("unless-stopped", 0, True), ("unless-stopped", 2, True),
    ("on-failure", 0, False), ("on-failure", 1, True),
])
def test_an_exit_by_itself(name: str, code: int, restart: bool) -> None:
    got = after_exit(container(name), ExitStatus(code, 2 * S), Why.EXITED)
    assert got is (Outcome.RESTART if restart else Outcome.NOTHING)


@pytest.mark.parametrize("name", ["always", "unless-stopped", "on-failure"])
def test_a_users_stop_ends_restarting(name: str) -> None:
    assert after_exit(container(name), ExitStatus(137, 2 * S), Why.STOPPED) is Outcome.NOTHING
    # Kept in the record: an exit seen later (the stop's) does not restart either.
    marked = container(name, by_user=True)
    assert after_exit(marked, ExitStatus(143, 2 * S), Why.EXITED) is Outcome.NOTHING


def test_on_failure_stops_at_its_maximum() -> None:
    failed = ExitStatus(1, 2 * S)
    assert after_exit(container("on-failure", 2, count=0), failed, Why.EXITED) is Outcome.RESTART
    assert after_exit(container("on-failure", 2, count=1), failed, Why.EXITED) is Outcome.RESTART
    assert after_exit(container("on-failure", 2, count=2), failed, Why.EXITED) is Outcome.NOTHING
    # 0: no maximum.
    assert after_exit(container("on-failure", 0, count=99), failed, Why.EXITED) is Outcome.RESTART


def test_a_users_failed_start_is_theirs_but_a_restarts_failure_backs_off_again() -> None:
    failed = ExitStatus(127, 2 * S, "exec failed")
    users = container("always", status=Status.EXITED)
    assert after_exit(users, failed, Why.START_FAILED) is Outcome.NOTHING
    policys = container("always", status=Status.RESTARTING)
    assert after_exit(policys, failed, Why.START_FAILED) is Outcome.RESTART
    limited = container("on-failure", 1, status=Status.RESTARTING, count=1)
    assert after_exit(limited, failed, Why.START_FAILED) is Outcome.NOTHING


@pytest.mark.parametrize(("name", "by_user", "missed", "recorded"), [
    ("no", False, False, False),
    ("always", False, True, True),
    ("always", True, True, True),  # docker: always restarts at boot, stopped or not
    ("unless-stopped", False, True, True),
    ("unless-stopped", True, False, False),
    ("on-failure", False, True, False),  # a missed failure restarts; an old end does not
    ("on-failure", True, False, False),
])
def test_at_boot(name: str, by_user: bool, missed: bool, recorded: bool) -> None:
    c = container(name, by_user=by_user)
    failed = ExitStatus(1, 2 * S)
    want = {True: Outcome.RESTART, False: Outcome.NOTHING}
    assert after_exit(c, failed, Why.FOUND_EXITED) is want[missed]
    assert after_exit(c, failed, Why.RECORDED) is want[recorded]


# ---- the back-off ---------------------------------------------------------------------------


def test_the_delay_doubles_from_100_ms_to_a_minute() -> None:
    delay, seen = 0, []
    for _ in range(12):
        delay = restarts.next_delay(delay, ran_ns=1 * S)
        seen.append(delay // MS)
    assert seen == [100, 200, 400, 800, 1600, 3200, 6400, 12800, 25600, 51200, 60000, 60000]


def test_a_run_of_10_s_starts_the_delay_over() -> None:
    assert restarts.next_delay(6400 * MS, ran_ns=10 * S) == 100 * MS
    assert restarts.next_delay(6400 * MS, ran_ns=10 * S - 1) == 12800 * MS


def test_the_plan_counts_from_the_exit() -> None:
    state = RestartState(delay_ns=400 * MS)
    # The exit is seen at once: due 800 ms after it.
    got = restarts.plan(state, started_at_ns=1 * S, exit=ExitStatus(1, 2 * S),
                        failed_start=False, now_ns=2 * S + 5 * MS)
    assert got == RestartState(delay_ns=800 * MS, next_at_ns=2 * S + 800 * MS)
    assert restarts.wait_s(got, now_ns=2 * S + 5 * MS) == pytest.approx(0.795)
    # Seen late (palletd was down): what is left; long gone: now.
    late = restarts.plan(state, 1 * S, ExitStatus(1, 2 * S), False, now_ns=2 * S + 500 * MS)
    assert late.next_at_ns == 2 * S + 800 * MS
    gone = restarts.plan(state, 1 * S, ExitStatus(1, 2 * S), False, now_ns=100 * S)
    assert gone.next_at_ns == 100 * S
    assert restarts.wait_s(gone, now_ns=101 * S) == 0


def test_a_failed_start_ran_for_nothing() -> None:
    # The previous run started long ago: that is not a run of 10 s of this start's.
    state = RestartState(delay_ns=3200 * MS)
    got = restarts.plan(state, started_at_ns=1 * S, exit=ExitStatus(128, 500 * S),
                        failed_start=True, now_ns=500 * S)
    assert got.delay_ns == 6400 * MS
    ran_long = restarts.plan(state, 1 * S, ExitStatus(1, 500 * S), False, now_ns=500 * S)
    assert ran_long.delay_ns == 100 * MS


def test_a_plan_clears_the_users_mark() -> None:
    state = RestartState(delay_ns=0, stopped_by_user=True)
    got = restarts.plan(state, 1 * S, ExitStatus(0, 2 * S), False, now_ns=2 * S)
    assert not got.stopped_by_user and got.delay_ns == 100 * MS


def test_boot_rule() -> None:
    assert restarts.start_at_boot(RestartPolicy("always"), RestartState(stopped_by_user=True))
    assert restarts.start_at_boot(RestartPolicy("unless-stopped"), RestartState())
    assert not restarts.start_at_boot(
        RestartPolicy("unless-stopped"), RestartState(stopped_by_user=True)
    )
    assert not restarts.start_at_boot(RestartPolicy("on-failure"), RestartState())
    assert not restarts.start_at_boot(RestartPolicy(), RestartState())


def test_the_record_keeps_the_policy_and_the_back_off() -> None:
    import sqlite3

    from pallet.daemon.containers.store import decode, encode

    c = replace(container("on-failure", 3, status=Status.RESTARTING, count=2),
                restarts=RestartState(delay_ns=200 * MS, next_at_ns=7 * S, stopped_by_user=True))
    conn = sqlite3.connect(":memory:")
    conn.row_factory = sqlite3.Row
    row = conn.execute(
        "SELECT ? AS id, ? AS name, ? AS image_id, ? AS created_ns, ? AS record",
        (c.id, c.name, c.image_id, c.created_ns, encode(c)),
    ).fetchone()
    assert decode(row) == c
