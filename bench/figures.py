"""The figures: what is timed and measured, and how it is printed.

Owns: the `Figure` value, timing of engine operations (CLI, and pallet's gRPC API over
one open channel), memory of shims and daemons, and the results table. Must not: know
an engine's command lines (that is `engines`) or start daemons.

Latencies are the median of `runs` timed calls after one untimed warm-up call; the
detail column gives min and max.
"""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import palletd
import procs
from engines import TIMEOUT, Engine, EngineError

#: (key, label, unit) of every figure, in table order.
FIGURES: tuple[tuple[str, str, str], ...] = (
    ("logfile_write", "log file: write 100 MB as 64 KiB records", "MB/s"),
    ("logfile_read", "log file: read 100 MB of 64 KiB records", "s"),
    ("logfile_tail", "log file: tail 100 lines of those", "ms"),
    ("logfile_write_small", "log file: write 100 MB as 1 KiB records", "MB/s"),
    ("logfile_read_small", "log file: read 100 MB of 1 KiB records", "s"),
    ("version", "`version` (CLI)", "ms"),
    ("run_rm_true", "`run --rm IMAGE true` (CLI)", "ms"),
    ("grpc_lifecycle", "create+start+wait+remove `true` (gRPC, open channel)", "ms"),
    ("grpc_exec", "`exec true` in a running container (gRPC, open channel)", "ms"),
    ("run_d_concurrent", "N x `run -d` at once, until all running", "s"),
    ("shim_rss", "shim RSS per running container", "MiB"),
    ("shim_pss", "shim PSS per running container", "MiB"),
    ("daemon_rss_idle", "daemon RSS, idle (image imported, no containers)", "MiB"),
    ("daemon_rss_busy", "daemon RSS with N containers running", "MiB"),
    ("stdout_100mb", "100 MB to stdout, attached `run` > /dev/null", "MB/s"),
    ("logs_100mb", "`logs` of those 100 MB > /dev/null", "s"),
    ("grpc_logs_100mb", "100 MB of logs over gRPC (open channel, no CLI)", "s"),
)
_LABELS = {key: (label, unit) for key, label, unit in FIGURES}
LONG_SLEEP = ["sleep", "100000"]
BIG_OUTPUT_BYTES = 100_000_000


@dataclass(frozen=True, slots=True)
class Figure:
    key: str
    value: float | None  # None: not measured (see detail)
    detail: str = ""

    @property
    def label(self) -> str:
        return _LABELS[self.key][0]

    @property
    def unit(self) -> str:
        return _LABELS[self.key][1]


def attempt(key: str, measure: Callable[[], Figure]) -> Figure:
    """Run one measurement; a failure becomes a figure saying why, and the rest go on."""
    try:
        return measure()
    except Exception as exc:  # noqa: BLE001 - reported in the table
        return Figure(key, None, f"failed: {exc}")


def latency(key: str, call: Callable[[], float], runs: int) -> Figure:
    """Median of `runs` timings (seconds, as returned by `call`) in ms, after a warm-up."""
    call()
    samples = [call() * 1000 for _ in range(runs)]
    return Figure(
        key,
        statistics.median(samples),
        f"min {min(samples):.1f} / max {max(samples):.1f} ms, n={runs}",
    )


def time_command(argv: list[str], stdout: Any = subprocess.DEVNULL) -> float:
    """Wall time of one command, in seconds; EngineError when it fails."""
    started = time.perf_counter()
    done = subprocess.run(argv, stdout=stdout, stderr=subprocess.PIPE, timeout=TIMEOUT)
    elapsed = time.perf_counter() - started
    if done.returncode != 0:
        stderr = done.stderr.decode(errors="replace").strip()
        raise EngineError(f"{' '.join(argv)} exited {done.returncode}: {stderr}")
    return elapsed


def _mib(kib: float) -> float:
    return kib / 1024


# --- engine figures (any engine, through its CLI) ---------------------------------------------


def measure_engine(
    engine: Engine, image: str, *, runs: int, containers: int, token: str
) -> list[Figure]:
    figures = [
        attempt("daemon_rss_idle", lambda: _daemon_rss("daemon_rss_idle", engine)),
        attempt("version", lambda: latency("version", lambda: time_command(engine.version()), runs)),
        attempt(
            "run_rm_true",
            lambda: latency(
                "run_rm_true", lambda: time_command(engine.run_rm(image, ["true"])), runs
            ),
        ),
    ]
    figures += _many_running(engine, image, containers, token)
    figures += _big_output(engine, image, token)
    return figures


def _daemon_rss(key: str, engine: Engine) -> Figure:
    daemons = engine.daemon_pids()
    if not daemons:
        return Figure(key, None, f"{engine.name} has no daemon")
    total = sum(procs.memory(pid).rss_kib for pid in daemons.values())
    return Figure(key, _mib(total), " + ".join(sorted(daemons)) if len(daemons) > 1 else "")


def _many_running(engine: Engine, image: str, count: int, token: str) -> list[Figure]:
    names = [f"bench-{token}-{i}" for i in range(count)]
    figures: list[Figure] = []
    try:
        started = time.perf_counter()
        clients = [
            subprocess.Popen(
                engine.run_detached(name, image, LONG_SLEEP),
                stdout=subprocess.DEVNULL,
                stderr=subprocess.PIPE,
            )
            for name in names
        ]
        failures = []
        for client in clients:
            _, stderr = client.communicate(timeout=TIMEOUT)
            if client.returncode != 0:
                failures.append(stderr.decode(errors="replace").strip())
        if failures:
            raise EngineError(f"{len(failures)} of {count} `run -d` failed, e.g.: {failures[0]}")
        deadline = time.monotonic() + TIMEOUT
        while (running := engine.running(names)) < count:
            if time.monotonic() > deadline:
                raise EngineError(f"only {running} of {count} containers running after {TIMEOUT}s")
            time.sleep(0.02)
        elapsed = time.perf_counter() - started
        figures.append(Figure("run_d_concurrent", elapsed, f"N={count}"))
        try:
            figures += _shim_memory(engine, names)
        except Exception as exc:  # noqa: BLE001 - reported in the table
            figures.append(Figure("shim_rss", None, f"failed: {exc}"))
        figures.append(attempt("daemon_rss_busy", lambda: _daemon_rss("daemon_rss_busy", engine)))
    except Exception as exc:  # noqa: BLE001 - reported in the table
        figures.append(Figure("run_d_concurrent", None, f"failed: {exc}"))
    finally:
        try:
            engine.remove(names)
        except EngineError as exc:
            print(f"bench: removing the {count} containers failed: {exc}", file=sys.stderr)
    return figures


def _shim_memory(engine: Engine, names: list[str]) -> list[Figure]:
    pids = engine.shim_pids(names)
    if len(set(pids)) != len(names):
        raise EngineError(f"found {len(set(pids))} shims for {len(names)} containers")
    usage = [procs.memory(pid) for pid in pids]
    rss = statistics.mean(u.rss_kib for u in usage)
    pss = statistics.mean(u.pss_kib for u in usage)
    total = f"{len(pids)} shims, {_mib(sum(u.rss_kib for u in usage)):.1f} MiB RSS in all"
    return [
        Figure("shim_rss", _mib(rss), total),
        Figure("shim_pss", _mib(pss), f"{_mib(sum(u.pss_kib for u in usage)):.1f} MiB PSS in all"),
    ]


def _big_output(engine: Engine, image: str, token: str) -> list[Figure]:
    name = f"bench-{token}-big"
    cmd = ["sh", "-c", f"head -c {BIG_OUTPUT_BYTES} /dev/zero"]
    figures: list[Figure] = []
    try:
        with open(os.devnull, "wb") as null:
            elapsed = time_command(engine.run_attached(name, image, cmd), stdout=null)
        figures.append(Figure("stdout_100mb", BIG_OUTPUT_BYTES / 1e6 / elapsed, f"{elapsed:.2f} s"))
        logs = engine.logs_of(name)
        if logs is None:
            figures.append(Figure("logs_100mb", None, f"{engine.name} keeps no logs"))
            return figures
        with open(os.devnull, "wb") as null:
            elapsed = time_command(logs, stdout=null)
        got = _count_output(logs)  # untimed: checks the timed read really held 100 MB
        detail = f"{BIG_OUTPUT_BYTES / 1e6 / elapsed:.0f} MB/s"
        if got != BIG_OUTPUT_BYTES:
            detail += f"; WRONG: logs gave {got} bytes"
        figures.append(Figure("logs_100mb", elapsed, detail))
    except Exception as exc:  # noqa: BLE001 - reported in the table
        key = "logs_100mb" if figures else "stdout_100mb"
        figures.append(Figure(key, None, f"failed: {exc}"))
    finally:
        try:
            engine.remove([name])
        except EngineError:
            pass  # the run may have failed before the container existed
    return figures


def _count_output(argv: list[str]) -> int:
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
    assert proc.stdout is not None
    total = 0
    with proc.stdout:
        while chunk := proc.stdout.read(1 << 20):
            total += len(chunk)
    proc.wait(TIMEOUT)
    return total


# --- pallet's gRPC API --------------------------------------------------------------------------


def measure_grpc(channel: Any, image: str, *, runs: int) -> list[Figure]:
    from pallet.v1 import containers_pb2 as pb

    stub = palletd.stub("ContainersService", channel)

    def lifecycle() -> float:
        started = time.perf_counter()
        created = stub.Create(
            pb.CreateContainerRequest(config=pb.ContainerConfig(image=image, cmd=["true"])),
            timeout=TIMEOUT,
        )
        stub.Start(pb.StartContainerRequest(container=created.id), timeout=TIMEOUT)
        waited = stub.Wait(pb.WaitContainerRequest(container=created.id), timeout=TIMEOUT)
        stub.Remove(pb.RemoveContainerRequest(container=created.id), timeout=TIMEOUT)
        elapsed = time.perf_counter() - started
        if waited.exit_code != 0:
            raise EngineError(f"`true` exited {waited.exit_code}: {waited.error}")
        return elapsed

    figures = [attempt("grpc_lifecycle", lambda: latency("grpc_lifecycle", lifecycle, runs))]
    target = ""
    try:
        target = stub.Create(
            pb.CreateContainerRequest(config=pb.ContainerConfig(image=image, cmd=LONG_SLEEP)),
            timeout=TIMEOUT,
        ).id
        stub.Start(pb.StartContainerRequest(container=target), timeout=TIMEOUT)
        figures.append(
            attempt("grpc_exec", lambda: latency("grpc_exec", lambda: _exec_true(stub, target), runs))
        )
    except Exception as exc:  # noqa: BLE001 - reported in the table
        figures.append(Figure("grpc_exec", None, f"failed: {exc}"))
    finally:
        if target:
            stub.Remove(pb.RemoveContainerRequest(container=target, force=True), timeout=TIMEOUT)
    figures.append(attempt("grpc_logs_100mb", lambda: _grpc_logs(stub, image)))
    return figures


def _grpc_logs(stub: Any, image: str) -> Figure:
    """The `logs` figure without the CLI: what the daemon and gRPC cost on their own."""
    from pallet.v1 import containers_pb2 as pb

    cmd = ["sh", "-c", f"head -c {BIG_OUTPUT_BYTES} /dev/zero"]
    created = stub.Create(
        pb.CreateContainerRequest(config=pb.ContainerConfig(image=image, cmd=cmd)), timeout=TIMEOUT
    )
    try:
        stub.Start(pb.StartContainerRequest(container=created.id), timeout=TIMEOUT)
        stub.Wait(pb.WaitContainerRequest(container=created.id), timeout=TIMEOUT)
        started = time.perf_counter()
        got = messages = 0
        for response in stub.Logs(pb.LogsRequest(container=created.id, tail=-1), timeout=TIMEOUT):
            messages += 1
            got += sum(len(chunk.data) for chunk in response.chunks)
        elapsed = time.perf_counter() - started
    finally:
        stub.Remove(pb.RemoveContainerRequest(container=created.id, force=True), timeout=TIMEOUT)
    detail = f"{BIG_OUTPUT_BYTES / 1e6 / elapsed:.0f} MB/s in {messages} messages"
    if got != BIG_OUTPUT_BYTES:
        detail += f"; WRONG: got {got} bytes"
    return Figure("grpc_logs_100mb", elapsed, detail)


def _exec_true(stub: Any, container: str) -> float:
    from pallet.v1 import containers_pb2 as pb

    finished = threading.Event()

    def requests() -> Iterator[Any]:
        yield pb.ExecRequest(open=pb.ExecOpen(container=container, cmd=["true"]))
        finished.wait(TIMEOUT)  # keep our side open until the exit arrives

    started = time.perf_counter()
    exit_code: int | None = None
    try:
        for response in stub.Exec(requests(), timeout=TIMEOUT):
            if response.HasField("exit"):
                exit_code = response.exit.exit_code
                break
    finally:
        finished.set()
    elapsed = time.perf_counter() - started
    if exit_code != 0:
        raise EngineError(f"exec `true` ended with {exit_code}")
    return elapsed


# --- the table ----------------------------------------------------------------------------------


def format_value(figure: Figure | None) -> str:
    if figure is None:
        return "-"
    if figure.value is None:
        return "n/a"
    digits = 0 if figure.value >= 100 else 1 if figure.value >= 10 else 2
    return f"{figure.value:.{digits}f} {figure.unit}"


def table(columns: dict[str, list[Figure]]) -> str:
    """One row per figure, one column per engine; then the details and failures."""
    by_key = {name: {f.key: f for f in figures} for name, figures in columns.items()}
    keys = [k for k, _, _ in FIGURES if any(k in figs for figs in by_key.values())]
    label_width = max(len(_LABELS[k][0]) for k in keys) if keys else 10
    header = "figure".ljust(label_width) + "".join(f"  {name:>14}" for name in columns)
    lines = [header, "-" * len(header)]
    for key in keys:
        cells = "".join(f"  {format_value(by_key[name].get(key)):>14}" for name in columns)
        lines.append(_LABELS[key][0].ljust(label_width) + cells)
    notes = [
        f"  {name}: {f.label}: {f.detail}"
        for name, figures in columns.items()
        for f in figures
        if f.detail
    ]
    if notes:
        lines += ["", "details:", *notes]
    return "\n".join(lines)
