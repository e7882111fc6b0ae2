"""JSON forms of the shim contract's values: config.json, exit.json and exec requests.

Owns: converting `ShimSpec`, `ExecSpec` and `ExitStatus` to and from JSON-able dicts, and
writing/reading the bundle files (exit.json atomically: tmp + fsync + rename; one
`execs/<exec_id>.json` per ended exec, atomically but without fsync). Must
not: interpret the values; the daemon writes config.json with `write_spec`, the shim
reads it with `read_spec`.
"""

from __future__ import annotations

import dataclasses
import json
import os
import re
from typing import Any

from pallet.v1.errors import InvalidArgument
from pallet.shim.api.spec import (
    CONFIG_FILE,
    EXEC_EXITS_DIR,
    EXIT_STATUS_FILE,
    ExecSpec,
    ExitStatus,
    Mount,
    RootFs,
    ShimSpec,
)


def spec_to_dict(spec: ShimSpec) -> dict[str, Any]:
    return dataclasses.asdict(spec)


_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,127}")


def validate_spec(spec: ShimSpec) -> ShimSpec:
    """Reject values that would escape their directory or smuggle mount options."""
    if not _ID.fullmatch(spec.container_id):
        raise InvalidArgument(
            f"invalid container id {spec.container_id!r}: use letters, digits, '_', '.', '-'"
        )
    parts = spec.cgroup_path.split("/")
    if spec.cgroup_path and (
        spec.cgroup_path.startswith("/") or any(p in ("", ".", "..") for p in parts)
    ):
        raise InvalidArgument(f"invalid cgroup path {spec.cgroup_path!r}: must be relative, no '..'")
    for name, value in (("bundle dir", spec.bundle_dir), ("log path", spec.log_path)):
        if not value.startswith("/"):
            raise InvalidArgument(f"the {name} {value!r} must be an absolute path")
    rootfs = spec.rootfs
    for path in (*rootfs.lower_dirs, rootfs.upper_dir, rootfs.work_dir, rootfs.target):
        # overlayfs takes its directories in one comma- and colon-separated option string.
        if not path.startswith("/") or any(c in path for c in ",:\n"):
            raise InvalidArgument(f"invalid rootfs path {path!r}: must be absolute, without ',' or ':'")
    if not rootfs.lower_dirs:
        raise InvalidArgument("the rootfs needs at least one lower directory")
    if not spec.args:
        raise InvalidArgument(f"container {spec.container_id} has no command to run")
    if len(spec.hostname.encode()) > 64:
        raise InvalidArgument(f"hostname {spec.hostname!r} is longer than 64 bytes")
    return spec


def spec_from_dict(raw: dict[str, Any]) -> ShimSpec:
    try:
        fields = dict(raw)
        fields["rootfs"] = RootFs(**{**raw["rootfs"], "lower_dirs": tuple(raw["rootfs"]["lower_dirs"])})
        fields["mounts"] = tuple(
            Mount(**{**m, "options": tuple(m.get("options", ()))}) for m in raw.get("mounts", ())
        )
        for name in ("args", "env", "capabilities", "masked_paths", "readonly_paths"):
            if name in fields:
                fields[name] = tuple(fields[name])
        return validate_spec(ShimSpec(**fields))
    except (KeyError, TypeError) as exc:
        raise InvalidArgument(f"malformed shim spec: {exc}") from None


def write_spec(spec: ShimSpec) -> None:
    """Write `<bundle>/config.json` (atomically, so a shim never reads half a spec)."""
    validate_spec(spec)
    # Not fsynced: the shim reads it at once from the page cache, and after a host crash
    # no shim is left to read it; the next start writes it again. Two fsyncs per start
    # showed up when 20 containers start at once.
    _write_atomic(os.path.join(spec.bundle_dir, CONFIG_FILE), spec_to_dict(spec), durable=False)


def read_spec(bundle_dir: str) -> ShimSpec:
    path = os.path.join(bundle_dir, CONFIG_FILE)
    try:
        with open(path, "rb") as f:
            raw = json.load(f)
    except FileNotFoundError:
        raise InvalidArgument(f"no shim spec at {path}") from None
    except ValueError as exc:
        raise InvalidArgument(f"shim spec {path} is not JSON: {exc}") from None
    return spec_from_dict(raw)


def exec_to_dict(spec: ExecSpec) -> dict[str, Any]:
    return dataclasses.asdict(spec)


def exec_from_dict(raw: dict[str, Any]) -> ExecSpec:
    try:
        fields = dict(raw)
        fields["args"] = tuple(raw["args"])
        fields["env"] = tuple(raw.get("env", ()))
        return ExecSpec(**fields)
    except (KeyError, TypeError) as exc:
        raise InvalidArgument(f"malformed exec spec: {exc}") from None


def exit_to_dict(status: ExitStatus) -> dict[str, Any]:
    return dataclasses.asdict(status)


def exit_from_dict(raw: dict[str, Any]) -> ExitStatus:
    return ExitStatus(
        exit_code=int(raw["exit_code"]),
        exited_at_ns=int(raw["exited_at_ns"]),
        error=str(raw.get("error", "")),
    )


def write_exit_status(bundle_dir: str, status: ExitStatus) -> None:
    """Record how the container ended; durable before anyone is told."""
    _write_atomic(os.path.join(bundle_dir, EXIT_STATUS_FILE), exit_to_dict(status))


def read_exit_status(bundle_dir: str) -> ExitStatus | None:
    try:
        with open(os.path.join(bundle_dir, EXIT_STATUS_FILE), "rb") as f:
            return exit_from_dict(json.load(f))
    except FileNotFoundError:
        return None
    except (ValueError, KeyError, TypeError):
        # Only a rename makes the file appear, so a torn file means outside tampering.
        return None


def validate_exec_id(exec_id: str) -> str:
    """An exec id names a file in the bundle: nothing that could leave `execs/`."""
    if not _ID.fullmatch(exec_id) or exec_id.startswith("."):
        raise InvalidArgument(
            f"invalid exec id {exec_id!r}: use letters, digits, '_', '.', '-'"
        )
    return exec_id


def _exec_exit_path(bundle_dir: str, exec_id: str) -> str:
    return os.path.join(bundle_dir, EXEC_EXITS_DIR, validate_exec_id(exec_id) + ".json")


def write_exec_exit(bundle_dir: str, exec_id: str, status: ExitStatus) -> None:
    """Record how an exec ended, before anyone is told.

    Atomic (a reader sees all of it or nothing) but not fsynced: it must survive palletd
    and the shim dying, which a rename does; a host crash takes the exec's container too.
    """
    os.makedirs(os.path.join(bundle_dir, EXEC_EXITS_DIR), mode=0o700, exist_ok=True)
    _write_atomic(_exec_exit_path(bundle_dir, exec_id), exit_to_dict(status), durable=False)


def read_exec_exit(bundle_dir: str, exec_id: str) -> ExitStatus | None:
    try:
        with open(_exec_exit_path(bundle_dir, exec_id), "rb") as f:
            return exit_from_dict(json.load(f))
    except (FileNotFoundError, NotADirectoryError):
        return None
    except (ValueError, KeyError, TypeError):
        return None  # only a rename makes it appear: a torn file is outside tampering


def discard_exec_exit(bundle_dir: str, exec_id: str) -> None:
    try:
        os.unlink(_exec_exit_path(bundle_dir, exec_id))
    except (FileNotFoundError, NotADirectoryError):
        pass


def _write_atomic(path: str, value: dict[str, Any], durable: bool = True) -> None:
    tmp = f"{path}.tmp.{os.getpid()}"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o600)
    try:
        os.write(fd, json.dumps(value, separators=(",", ":")).encode())
        if durable:
            os.fsync(fd)
    finally:
        os.close(fd)
    os.rename(tmp, path)
    if not durable:
        return
    # The rename is durable only once the directory entry is.
    dir_fd = os.open(os.path.dirname(path) or ".", os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)
