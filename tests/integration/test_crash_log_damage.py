"""A container's log file damaged on disk: `pallet logs` still shows every undamaged line.

A record damaged in the middle of the file (here its length overwritten to claim 4 GiB,
as a bit flip or a torn sector could) costs that record's lines only: `pallet logs` and
`pallet logs -f` show everything before and after it, print nothing made up, and palletd
warns once, naming the file and the byte offset.
"""

from __future__ import annotations

import json
import re
import struct
from pathlib import Path
from typing import Any

import pytest

from pallet.shim.api.logframes import FILE_HEADER_SIZE, RECORD_OVERHEAD
from pallet.shim.api.logs import read_records

pytestmark = pytest.mark.integration

# One line every 10 ms: most records hold one line; which do does not matter to the test.
FIRST = "i=0; while [ $i -lt 60 ]; do echo line $i; i=$((i+1)); usleep 10000; done"
# The pause after /tmp/go appears lets the exec's `touch` end first: the container's end
# kills what is left in its pid namespace, and a touch killed so would fail the exec.
THEN = ("while [ ! -e /tmp/go ]; do usleep 20000; done; usleep 500000;"
        " for j in 1 2 3; do echo after $j; done")


def record_spans(path: Path) -> list[tuple[int, int, bytes]]:
    """(start, end, data) of each record of a log file, in order."""
    spans, off = [], FILE_HEADER_SIZE
    for record in read_records(str(path)):
        end = off + RECORD_OVERHEAD + len(record.data)
        spans.append((off, end, record.data))
        off = end
    assert off == path.stat().st_size, "the log has records this test did not account for"
    return spans


def damage_record_holding(path: Path, line: bytes) -> tuple[int, bytes]:
    """Overwrite the length of the record holding `line`; return its offset and data."""
    for start, _, data in record_spans(path):
        if line in data.splitlines(keepends=True):
            with open(path, "r+b") as f:
                f.seek(start)
                f.write(struct.pack("<I", 0xFFFF_FFF0))
            return start, data
    raise AssertionError(f"no record holds {line!r}")


def gap_warnings(palletd: Any) -> list[dict[str, Any]]:
    found = []
    for text in palletd.log_path.read_text(errors="replace").splitlines():
        if "damaged container log" in text:
            found.append(json.loads(text))
    return found


def test_logs_show_every_line_around_a_damaged_record(palletd: Any, image: str) -> None:
    palletd.cli_ok("run", "-d", "--name", "scribe", image, "sh", "-c", f"{FIRST}; {THEN}")
    palletd.wait_for(lambda: "line 59\n" in palletd.cli_ok("logs", "scribe"), 30, what="line 59")
    path = Path(palletd.inspect("scribe")["LogPath"])
    before = palletd.cli_ok("logs", "scribe")
    assert before == "".join(f"line {i}\n" for i in range(60))
    offset, lost = damage_record_holding(path, b"line 30\n")
    want = before.replace(lost.decode(), "", 1)
    assert "line 30\n" not in want

    # History, --tail and -f all step over the damaged record, and nothing else is lost.
    assert palletd.cli_ok("logs", "scribe") == want
    assert palletd.cli_ok("logs", "--tail", "1000", "scribe") == want
    tail = palletd.cli_ok("logs", "--tail", "40", "scribe")
    assert tail == "".join(want.splitlines(keepends=True)[-40:])
    follower = palletd.cli_popen("logs", "-f", "scribe", text=True)
    out = [palletd.read_line(follower)]  # line by line: it is following now
    palletd.cli_ok("exec", "scribe", "touch", "/tmp/go")
    while out[-1] not in ("", "after 3\n"):
        out.append(palletd.read_line(follower))
    assert follower.wait(30) == 0
    assert "".join(out) == want + "after 1\nafter 2\nafter 3\n"
    assert re.fullmatch(r"(line \d+\n|after \d\n)*", "".join(out))  # nothing made up

    # palletd said so once, with the file and the byte offset, however often it was read.
    warnings = gap_warnings(palletd)
    assert [(w["file"], w["offset"], w["length"]) for w in warnings] == [
        (str(path), offset, RECORD_OVERHEAD + len(lost))
    ]
    assert warnings[0]["level"] == "warning" and warnings[0]["container_id"] in path.parts
