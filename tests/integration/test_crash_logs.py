"""Log rotation (`--log-opt max-size`, `max-file`) and `logs -f` across rotation."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest

pytestmark = pytest.mark.integration

LINES = 4000
WRITER = f"sleep 1; i=0; while [ $i -lt {LINES} ]; do echo line $i; i=$((i+1)); usleep 1000; done"


def numbers(out: str) -> list[int]:
    return [int(m.group(1)) for m in re.finditer(r"^line (\d+)$", out, re.M)]


def test_log_rotates_and_follow_crosses_rotations(palletd: Any, image: str) -> None:
    palletd.cli_ok("run", "-d", "--name", "chatty", "--log-opt", "max-size=16k",
                   "--log-opt", "max-file=3", image, "sh", "-c", WRITER)
    follower = palletd.cli_popen("logs", "-f", "chatty", text=True)
    out, err = follower.communicate(timeout=120)
    assert follower.returncode == 0, err
    # Following from the start, the reader keeps up across every rotation: all lines.
    # (Like docker, a follower more than max-file - 1 files behind would lose lines; two
    # 16 KiB files are seconds of this writer's output.)
    assert numbers(out) == list(range(LINES))

    info = palletd.inspect("chatty")
    assert info["HostConfig"]["LogConfig"]["Config"] == {"max-size": "16384", "max-file": "3"}
    log_path = Path(info["LogPath"])
    files = sorted(p.name for p in log_path.parent.iterdir() if p.name.startswith(log_path.name))
    assert 1 < len(files) <= 3, files
    assert sum((log_path.parent / f).stat().st_size for f in files) <= 3 * 16384 + 4096
    # Without follow only what the kept files hold is there: the newest lines, no gap.
    kept = numbers(palletd.cli_ok("logs", "chatty"))
    assert kept and kept[-1] == LINES - 1 and kept[0] > 0
    assert kept == list(range(kept[0], LINES))


def test_bad_log_options_are_refused(palletd: Any, image: str) -> None:
    for opts, message in (
        (["--log-opt", "max-size=lots"], "invalid log option max-size='lots'"),
        (["--log-opt", "max-file=0"], "invalid log option max-file='0'"),
        (["--log-opt", "mode=non-blocking"], "unknown log option 'mode=non-blocking'"),
        (["--log-opt", "max-file=3"], "needs max-size"),
    ):
        result = palletd.cli("create", *opts, image, "true")
        assert result.returncode != 0, opts
        assert message in result.stderr, (opts, result.stderr)
    assert palletd.cli_ok("ps", "-aq") == ""


def test_log_options_are_kept_and_shown(palletd: Any, image: str) -> None:
    palletd.cli_ok("create", "--name", "rotor", "--log-opt", "max-size=1m", image,
                   "echo", "hi")
    palletd.cli_ok("start", "rotor")
    assert palletd.cli_ok("wait", "rotor") == "0\n"
    config = json.loads(palletd.cli_ok("inspect", "rotor"))[0]["HostConfig"]["LogConfig"]
    assert config == {"Type": "local", "Config": {"max-size": "1048576", "max-file": "1"}}
    assert palletd.cli_ok("logs", "rotor") == "hi\n"
