"""`pallet-shim delete`: clean up after a container whose shim died (containerd's
`containerd-shim delete`).

Owns: killing what is left in a dead shim's container cgroup, removing the cgroup and
the shim's socket, and reporting it as a `DeleteResult`. Only the shim knows the cgroup
layout, so the daemon asks this command instead of touching cgroups itself. Must not:
act on a container whose shim still answers on its socket (that shim owns it; hung is not
dead), or touch anything outside the container's cgroup and the shim's socket.

A shim normally removes its socket and cgroup itself, and its container's init dies with
it (PR_SET_PDEATHSIG), taking the pid namespace along; this is the backstop for a shim
killed -9 or by the OOM killer.
"""

from __future__ import annotations

import os

from pallet.v1.errors import FailedPrecondition
from pallet.shim.api import sockpath
from pallet.shim.api.delete import DeleteResult
from pallet.shim.api.files import read_cgroups_path
from pallet.shim.cgroups import destroy, open_cgroup

#: How long the killed processes may take to leave their cgroup.
REMOVE_TIMEOUT = 5.0


def delete(run_root: str, container_id: str, bundle_dir: str, cgroups_path: str | None) -> DeleteResult:
    """Clean up after the dead shim of `container_id`; raise if it is not dead."""
    sock = sockpath.shim_socket(run_root, container_id)
    if sockpath.answers(sock):
        raise FailedPrecondition(
            f"the shim of container {container_id} still answers on {sock}: it is not dead; "
            "stop the container instead"
        )
    if cgroups_path is None:
        try:
            cgroups_path = read_cgroups_path(bundle_dir)
        except OSError as exc:
            raise FailedPrecondition(
                f"cannot read the spec of container {container_id} in {bundle_dir} "
                f"({exc.strerror or exc}): give --cgroups-path"
            ) from None
    cgroup = open_cgroup(cgroups_path)
    present = cgroup.paths()
    killed, left = destroy(cgroup, REMOVE_TIMEOUT)
    try:
        os.unlink(sock)
        socket_removed = True
    except FileNotFoundError:
        socket_removed = False
    return DeleteResult(
        killed=tuple(killed),
        cgroups_removed=tuple(p for p in present if p not in left),
        cgroups_left=tuple(left),
        socket_removed=socket_removed,
    )
