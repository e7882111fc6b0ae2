"""Numbers and times the API's fields cannot hold: one line `Error: ...` and docker's exit
code (125 for run/create, 1 otherwise), never a traceback, and no request sent.

The host is a socket that does not exist: a command that got as far as the daemon would
fail with "cannot connect" instead of the range error asserted here.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from pallet.client.cli import main
from pallet.client.options import parse_env_file, parse_tail, parse_time
from pallet.client.requests import parse_log_opts
from pallet.v1.errors import InvalidArgument

BIG = "9" * 20  # above 2**64
HUGE = "9" * 23

CASES = [
    (["stop", "-t", "99999999999", "web"], 1, "invalid --time value 99999999999: use 0 to 2147483647 seconds"),
    (["stop", "-t", "-1", "web"], 1, "invalid --time value -1: use 0 to 2147483647 seconds"),
    (["restart", "-t", "99999999999", "web"], 1, "invalid --time value 99999999999"),
    (["container", "stop", "--time", BIG, "web"], 1, "invalid --time value"),
    (["run", "--stop-timeout", "99999999999", "busybox", "true"], 125, "invalid --stop-timeout value 99999999999"),
    (["create", "--stop-timeout", "2147483648", "busybox"], 125, "use 0 to 2147483647 seconds"),
    (["run", "--log-opt", f"max-size={HUGE}", "busybox", "true"], 125, f"invalid log option max-size='{HUGE}'"),
    (["run", "--log-opt", "max-size=9999999999g", "busybox", "true"], 125, "use at most 9223372036854775807 bytes"),
    (["create", "--log-opt", "max-size=1m", "--log-opt", f"max-file={BIG}", "busybox"], 125, "invalid log option max-file"),
    (["logs", "--tail", BIG, "web"], 1, f"invalid --tail value '{BIG}'"),
    (["logs", "--since", BIG, "web"], 1, f"invalid time '{BIG}': out of range"),
    (["logs", "--until", "99999999999999", "web"], 1, "out of range"),
    (["events", "--since-seq", BIG], 1, "--since-seq must be 0 to 9223372036854775807"),
    (["events", "--since-seq", str(2**63)], 1, "--since-seq must be 0 to"),
    (["events", "--since", BIG], 1, f"invalid time '{BIG}': out of range"),
    (["events", "--until", "1" + "0" * 400 + "h"], 1, "out of range"),
    (["events", "--since", "9999999999999999999h"], 1, "out of range"),
]


@pytest.mark.parametrize(("argv", "code", "message"), CASES, ids=lambda v: " ".join(v) if isinstance(v, list) else None)
def test_out_of_range_numbers_are_one_line_errors(
    argv: list[str], code: int, message: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["--host", f"unix://{tmp_path}/none.sock", *argv]) == code
    captured = capsys.readouterr()
    assert captured.out == ""
    lines = captured.err.splitlines()
    assert len(lines) == 1, captured.err
    assert lines[0].startswith("Error: ") and message in lines[0], lines[0]


def test_the_largest_values_that_fit_are_taken() -> None:
    assert parse_tail(str(2**63 - 1)) == 2**63 - 1
    assert parse_log_opts([f"max-size={2**63 - 1}", f"max-file={2**31 - 1}"]) == (2**63 - 1, 2**31 - 1)
    assert parse_time("9223372035", 0) == (9223372035, 0)
    assert parse_time("2262-04-10T00:00:00Z", 0) == (9223200000, 0)
    assert parse_time("1677-09-22T00:00:00Z", 0) == (-9223286400, 0)


def test_times_past_a_timestamps_range_are_refused() -> None:
    for text in ("9223372037", "9999-12-31T23:59:59Z", "0001-01-01T00:00:00Z", "2263-01-01"):
        with pytest.raises(InvalidArgument, match="out of range"):
            parse_time(text, 0)
    with pytest.raises(InvalidArgument, match="out of range"):
        parse_time("3000000h", 0)  # ~342 years before 1970
    assert parse_time("300000h", 0) == (-300000 * 3600, 0)  # 1935 is fine


def test_an_env_file_with_a_nul_byte_names_the_line(tmp_path: Path) -> None:
    env_file = tmp_path / "env"
    env_file.write_bytes(b"A=1\nB=x\x00y\n")
    with pytest.raises(InvalidArgument, match=f"^variable 'B' \\(line 2 of {env_file}\\) contains a NUL byte$"):
        parse_env_file(str(env_file), {})
