"""`after_exit`: what follows every way a container's run ends, as a table."""

from __future__ import annotations

import itertools

import pytest

from pallet.daemon.containers.exits import Outcome, Why, after_exit, of_this_run
from pallet.daemon.containers.model import Config, Container, ContainerState, HostConfig, Status
from pallet.shim.api.spec import ExitStatus


def container(auto_remove: bool, status: Status = Status.EXITED) -> Container:
    return Container(
        id="c" * 64,
        name="web",
        image_id="sha256:" + "ab" * 32,
        config=Config(image="busybox"),
        host_config=HostConfig(auto_remove=auto_remove),
        state=ContainerState(status=status),
        created_ns=1,
        state_dir="/nonexistent",
    )


EXITS = (ExitStatus(0, 1), ExitStatus(137, 1), ExitStatus(127, 1, "exec failed"))


@pytest.mark.parametrize(("why", "exit"), list(itertools.product(Why, EXITS)))
def test_rm_removes_however_the_run_ended(why: Why, exit: ExitStatus) -> None:
    # After a failed start the container is still Created; after the others, Exited.
    status = Status.CREATED if why is Why.START_FAILED else Status.EXITED
    assert after_exit(container(True, status), exit, why) is Outcome.REMOVE


@pytest.mark.parametrize(("why", "exit"), list(itertools.product(Why, EXITS)))
def test_without_rm_nothing_follows(why: Why, exit: ExitStatus) -> None:
    status = Status.CREATED if why is Why.START_FAILED else Status.EXITED
    assert after_exit(container(False, status), exit, why) is Outcome.NOTHING


def test_an_exit_on_disk_from_before_the_run_started_is_not_this_runs() -> None:
    old = ExitStatus(0, 100)
    assert of_this_run(old, started_at_ns=200) is None  # the previous run's
    assert of_this_run(old, started_at_ns=100) == old
    assert of_this_run(old, started_at_ns=0) == old  # a record without a start time
    assert of_this_run(None, started_at_ns=0) is None
