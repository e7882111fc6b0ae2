"""A container's effective config: the caller's create request merged over the image's.

Owns: docker's merge rules (entrypoint/cmd, env by key, labels, stop signal and timeout)
and their validation. Must not: do I/O.
"""

from __future__ import annotations

from pallet.daemon.containers.model import ContainerConfig, CreateRequest
from pallet.daemon.containers.signals import parse_signal
from pallet.v1.errors import InvalidArgument
from pallet.daemon.images.model import Image

DEFAULT_PATH = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


def merge_env(*layers: tuple[str, ...]) -> tuple[str, ...]:
    """Later layers override earlier ones by key; order of first appearance is kept."""
    merged: dict[str, str] = {}
    for layer in layers:
        for item in layer:
            merged[item.split("=", 1)[0]] = item
    return tuple(merged.values())


def effective_config(req: CreateRequest, image: Image, hostname: str) -> ContainerConfig:
    """The caller's request merged over the image's config, as docker merges them."""
    ic = image.config
    if req.entrypoint_set:
        # A new entrypoint resets the image's Cmd too (docker does the same).
        entrypoint, cmd = req.entrypoint, req.cmd
    else:
        entrypoint, cmd = ic.entrypoint, (req.cmd or ic.cmd)
    if not entrypoint and not cmd:
        raise InvalidArgument(
            f"no command specified: image {req.image} has no Cmd or Entrypoint, "
            "so give a command"
        )
    env = merge_env(ic.env, (f"HOSTNAME={hostname}",), req.env)
    if not any(e.startswith("PATH=") for e in env):
        env = (DEFAULT_PATH,) + env
    for item in req.env:
        if "=" not in item:
            raise InvalidArgument(f"invalid environment variable {item!r}: use KEY=value")
    if req.working_dir and not req.working_dir.startswith("/"):
        raise InvalidArgument(
            f"the working directory {req.working_dir!r} is invalid: it needs to be an "
            "absolute path"
        )
    labels = dict(ic.labels)
    labels.update(req.labels)
    stop_signal = req.stop_signal or ic.stop_signal or "SIGTERM"
    parse_signal(stop_signal)
    stop_timeout = 10 if req.stop_timeout is None else req.stop_timeout
    if stop_timeout < 0:
        raise InvalidArgument(f"invalid stop timeout {stop_timeout}: use 0 or more seconds")
    if req.log_max_size < 0 or req.log_max_files < 0:
        raise InvalidArgument(
            "invalid log options: max-size and max-file must be 0 or more"
        )
    if req.log_max_files > 1 and not req.log_max_size:
        raise InvalidArgument(
            f"log option max-file={req.log_max_files} needs max-size: without it the log "
            "never rotates"
        )
    return ContainerConfig(
        image=req.image,
        cmd=cmd,
        entrypoint=entrypoint,
        env=env,
        working_dir=req.working_dir or ic.working_dir or "/",
        user=req.user or ic.user,
        hostname=hostname,
        labels=labels,
        open_stdin=req.open_stdin,
        auto_remove=req.auto_remove,
        stop_signal=stop_signal,
        stop_timeout=stop_timeout,
        log_max_size=req.log_max_size,
        log_max_files=max(1, req.log_max_files),
    )
