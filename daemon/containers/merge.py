"""A container's effective config: the caller's create request merged over the image's.

Owns: docker's merge rules (entrypoint/cmd, env by key, labels, stop signal and timeout,
the healthcheck by `healthcheck.merge`)
into `Config`, the checks and defaults of `HostConfig`, and their validation (with the
size limits of `pallet.daemon.limits` for the caller's labels, command and environment,
host name and working dir).
Must not: do I/O.
"""

from __future__ import annotations

from dataclasses import replace

from pallet.daemon.containers.model import (
    Config,
    ConfigRequest,
    CreateRequest,
    HostConfig,
    LogConfig,
)
from pallet.daemon.containers import healthcheck
from pallet.daemon.containers.restarts import check_policy
from pallet.daemon.containers.resize import check_console_size
from pallet.daemon.containers.signals import parse_signal
from pallet.daemon.limits import check_args_and_env, check_hostname, check_labels, check_path
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


def effective_config(
    req: CreateRequest, image: Image, hostname: str
) -> tuple[Config, HostConfig]:
    """The request's Config merged over the image's, and its HostConfig checked."""
    return merge_config(req.config, image, hostname), host_config(req.host_config)


def merge_config(req: ConfigRequest, image: Image, hostname: str) -> Config:
    """The caller's Config merged over the image's, as docker merges them."""
    ic = image.config
    if req.entrypoint is not None:
        # A new entrypoint resets the image's Cmd too (docker does the same).
        entrypoint, cmd = req.entrypoint, req.cmd or ()
    else:
        entrypoint, cmd = ic.entrypoint, (ic.cmd if req.cmd is None else req.cmd)
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
    check_path(req.working_dir, "the working directory")
    check_args_and_env((*(req.entrypoint or ()), *(req.cmd or ())), req.env, "the container")
    if req.healthcheck is not None:
        check_args_and_env(req.healthcheck.test, (), "the healthcheck")
    check_hostname(hostname)
    # The caller's labels only: an image's own (pulled, loaded) are not the caller's to fix.
    check_labels(req.labels, "the container")
    labels = dict(ic.labels)
    labels.update(req.labels)
    stop_signal = req.stop_signal or ic.stop_signal or "SIGTERM"
    parse_signal(stop_signal)
    stop_timeout = 10 if req.stop_timeout is None else req.stop_timeout
    if stop_timeout < 0:
        raise InvalidArgument(f"invalid stop timeout {stop_timeout}: use 0 or more seconds")
    return Config(
        image=req.image,
        cmd=cmd,
        entrypoint=entrypoint,
        env=env,
        working_dir=req.working_dir or ic.working_dir or "/",
        user=req.user or ic.user,
        hostname=hostname,
        labels=labels,
        open_stdin=req.open_stdin,
        stdin_once=req.stdin_once and req.open_stdin,
        stop_signal=stop_signal,
        stop_timeout=stop_timeout,
        exposed_ports=ic.exposed_ports,
        mac_address=req.mac_address,
        tty=req.tty,
        console_size=check_console_size(req.console_size),
        healthcheck=healthcheck.merge(healthcheck.check(req.healthcheck), ic.healthcheck),
        shell=ic.shell,
    )


def host_config(req: HostConfig) -> HostConfig:
    """The caller's HostConfig checked, with its defaults filled (max-file 0: one file).

    A field that needs no check or default passes through as asked; `security` is
    judged by `security.check` (it reads the host: devices, limits, libseccomp).
    """
    return replace(
        req,
        log_config=log_config(req.log_config),
        restart_policy=check_policy(req.restart_policy, req.auto_remove),
    )


def log_config(req: LogConfig) -> LogConfig:
    if req.max_size < 0 or req.max_files < 0:
        raise InvalidArgument(
            "invalid log options: max-size and max-file must be 0 or more"
        )
    if req.max_files > 1 and not req.max_size:
        raise InvalidArgument(
            f"log option max-file={req.max_files} needs max-size: without it the log "
            "never rotates"
        )
    return LogConfig(max_size=req.max_size, max_files=max(1, req.max_files))
