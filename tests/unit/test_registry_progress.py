"""The CLI's pull/push progress: one line per change when piped, redrawn in place on a terminal."""

from __future__ import annotations

import io
from types import SimpleNamespace

from pallet.client.verbs_registry import ProgressView


class Tty(io.StringIO):
    def isatty(self) -> bool:
        return True


def step(id_: str, status: str, current: int = 0, total: int = 0) -> SimpleNamespace:
    return SimpleNamespace(id=id_, status=status, current=current, total=total)


def test_piped_progress_prints_each_change_once() -> None:
    out = io.StringIO()
    view = ProgressView(out)
    for s in [
        step("", "1: Pulling from a"),
        step("aaa", "Downloading", 1, 100),
        step("aaa", "Downloading", 50, 100),
        step("bbb", "Already exists"),
        step("aaa", "Download complete", 100, 100),
        step("aaa", "Pull complete", 100, 100),
    ]:
        view.step(s)
    lines = out.getvalue().splitlines()
    assert lines[0] == "1: Pulling from a"
    assert lines[1].startswith("aaa: Downloading [") and lines[1].endswith("1B/100B")
    assert lines[2:] == ["bbb: Already exists", "aaa: Download complete", "aaa: Pull complete"]


def test_terminal_progress_rewrites_the_layers_line() -> None:
    out = Tty()
    view = ProgressView(out)
    view.step(step("aaa", "Waiting"))
    view.step(step("bbb", "Waiting"))
    view.step(step("aaa", "Pull complete"))
    text = out.getvalue()
    assert text.startswith("aaa: Waiting\nbbb: Waiting\n")
    assert "\x1b[2A\r\x1b[2Kaaa: Pull complete\x1b[2B\r" in text


def test_quiet_prints_nothing() -> None:
    out = io.StringIO()
    ProgressView(out, quiet=True).step(step("aaa", "Pulling"))
    assert out.getvalue() == ""
