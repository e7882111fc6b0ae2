"""Running `pallet-shim delete`: the shim's own cleanup after a dead shim.

Owns: starting `pallet-shim delete` for one container as a subprocess with a deadline and
reading back its `DeleteResult`. Must not: know what the shim cleans up (cgroups,
sockets): that layout is the shim's, which is the point of asking it.
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

from pallet.v1.errors import DeadlineExceeded, Internal
from pallet.shim.api import codec, wire
from pallet.shim.api.delete import DeleteResult
from pallet.shim.api.spec import CONFIG_FILE

#: Killing what is left and waiting for the kernel to release the cgroup takes at most a
#: few seconds (the shim gives up after 5); the interpreter's start-up comes on top.
DELETE_TIMEOUT = 60.0


async def shim_delete(
    python: str,
    run_root: Path,
    container_id: str,
    bundle_dir: Path,
    cgroup_path: str,
    timeout: float = DELETE_TIMEOUT,
) -> DeleteResult:
    """Run `pallet-shim delete` for `container_id`; its error, or a hang, is raised.

    The cgroup is the one in the bundle's config.json, the spec the container was started
    with (the shim reads it): `cgroup_path`, made from today's --cgroup-parent, may name
    another one. It is passed only when there is no config.json to read.
    """
    args = [
        python, "-m", "pallet.shim.main", "delete", "--run-root", str(run_root),
        "--id", container_id, "--bundle", str(bundle_dir),
    ]
    if not (bundle_dir / CONFIG_FILE).exists():
        args += ["--cgroups-path", cgroup_path]
    process = await asyncio.create_subprocess_exec(
        *args,
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        out, err = await asyncio.wait_for(process.communicate(), timeout)
    except asyncio.TimeoutError:
        process.kill()
        await process.wait()
        raise DeadlineExceeded(
            f"pallet-shim delete for container {container_id} did not finish within {timeout:g}s"
        ) from None
    finally:
        if process.returncode is None:  # cancelled: do not leave it behind
            process.kill()
            await process.wait()
    lines = out.decode(errors="replace").strip().splitlines()
    try:
        reply = json.loads(lines[-1]) if lines else None
    except ValueError:
        reply = None
    if not isinstance(reply, dict):
        raise Internal(
            f"pallet-shim delete for container {container_id} failed (exit {process.returncode}): "
            f"{err.decode(errors='replace').strip() or out.decode(errors='replace').strip()}"
        )
    wire.raise_if_error(reply)
    return codec.from_json(DeleteResult, reply, what="pallet-shim delete's result")
