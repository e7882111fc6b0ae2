"""The shim's init state machine: the legal moves, and every other one refused."""

from __future__ import annotations

import itertools

import pytest

from pallet.v1.errors import FailedPrecondition
from pallet.shim.api.spec import TaskStatus
from pallet.shim.states import TRANSITIONS, InitState

CREATED, RUNNING, STOPPED = TaskStatus.CREATED, TaskStatus.RUNNING, TaskStatus.STOPPED


def test_the_table_is_containerds_init_state_machine() -> None:
    assert TRANSITIONS == {
        CREATED: {RUNNING, STOPPED},  # started; or killed or deleted before its start
        RUNNING: {STOPPED},
        STOPPED: set(),
    }


@pytest.mark.parametrize("path", [(RUNNING, STOPPED), (STOPPED,)])
def test_legal_paths_end_stopped(path: tuple[TaskStatus, ...]) -> None:
    state = InitState("web")
    assert state.status is CREATED
    for to in path:
        state.move(to)
    assert state.status is STOPPED


ILLEGAL = [
    (a, b) for a, b in itertools.product(TaskStatus, TaskStatus) if b not in TRANSITIONS[a]
]


def test_the_illegal_moves_are_all_the_others() -> None:
    # Staying put, going back, and leaving STOPPED: 9 pairs minus the 3 legal moves.
    assert len(ILLEGAL) == 6 and (CREATED, CREATED) in ILLEGAL and (STOPPED, RUNNING) in ILLEGAL


@pytest.mark.parametrize("start, to", ILLEGAL, ids=lambda s: s.value)
def test_every_illegal_move_is_refused_naming_the_state(start: TaskStatus, to: TaskStatus) -> None:
    state = InitState("web", start)
    with pytest.raises(FailedPrecondition, match=f"^container web is {start.value}: it cannot become {to.value}$"):
        state.move(to)
    assert state.status is start  # nothing changed


def test_require_names_the_state_and_says_what_to_do() -> None:
    state = InitState("web", RUNNING)
    state.require({RUNNING}, "unused")
    with pytest.raises(FailedPrecondition, match="^container web is running: kill it first$"):
        state.require({CREATED, STOPPED}, "kill it first")
