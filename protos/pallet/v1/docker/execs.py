"""Docker's JSON of an exec instance (`GET /exec/{id}/json`, `docker inspect` of an exec)."""

from __future__ import annotations

from typing import Any


def exec_json(e: Any) -> dict[str, Any]:
    """Docker's ExecInspect of a pallet.v1 ExecInstance: ExitCode null until it ends."""
    p = e.process
    args = list(p.cmd)
    return {
        "ID": e.id,
        "Running": e.running,
        "ExitCode": e.exit.exit_code if e.HasField("exit") else None,
        "ProcessConfig": {
            "tty": p.tty,
            "entrypoint": args[0] if args else "",
            "arguments": args[1:],
            "privileged": p.privileged,
            "user": p.user,
        },
        "OpenStdin": p.stdin,
        "OpenStderr": p.stderr,
        "OpenStdout": p.stdout,
        "CanRemove": False,
        "ContainerID": e.container_id,
        "DetachKeys": p.detach_keys,
        "Pid": int(e.pid),
    }
