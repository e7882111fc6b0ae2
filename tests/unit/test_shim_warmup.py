"""The launcher's warm-up before it forks shims, and how it names processes."""

from __future__ import annotations

import dataclasses
import os
import typing
from typing import Any

from pallet.shim import warmup
from pallet.shim.api import codec, messages
from pallet.shim.api.spec import ShimSpec
from pallet.shim.launcher import set_process_name


def _dataclasses_in(*types: Any) -> set[type]:
    found: set[type] = set()
    todo = list(types)
    while todo:
        tp = todo.pop()
        if isinstance(tp, type) and dataclasses.is_dataclass(tp) and tp not in found:
            found.add(tp)
            todo.extend(typing.get_type_hints(tp).values())
        todo.extend(typing.get_args(tp))
    return found


def test_warm_up_leaves_every_message_and_the_spec_decoded_without_new_hints() -> None:
    warmup.warm_up()
    everything = _dataclasses_in(ShimSpec, *messages.REQUESTS.values(), *messages.EVENTS.values())
    misses = codec._hints.cache_info().misses
    for cls in everything:
        codec._hints(cls)
    assert codec._hints.cache_info().misses == misses  # nothing a shim would evaluate again


def test_warm_up_opens_nothing() -> None:
    before = sorted(os.listdir("/proc/self/fd"))
    warmup.warm_up()
    assert sorted(os.listdir("/proc/self/fd")) == before


def test_set_process_name_is_what_ps_shows_cut_to_15_bytes() -> None:
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:  # in a child: the test runner keeps its own name
        try:
            set_process_name("pallet-test-a-long-name")
            with open("/proc/self/comm", "rb") as f:
                os.write(w, f.read())
        finally:
            os._exit(0)
    os.close(w)
    with os.fdopen(r, "rb") as f:
        shown = f.read()
    os.waitpid(pid, 0)
    assert shown == b"pallet-test-a-l\n"
