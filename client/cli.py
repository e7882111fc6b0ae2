"""`pallet`: the command line, docker's verbs over palletd's gRPC API.

Owns: the argument grammar (verbs, aliases, flags), exit codes (0 ok, 1 daemon error,
2 bad usage; 125 for run/create; 130 on Ctrl-C) and printing `Error: <message>`.
Must not: import grpc, protobuf or anything heavy at module level: `pallet version` must
start in well under 250 ms, so each verb's module (`pallet.client.verbs_*`) is imported
only when that verb runs. Only argparse, os, sys and the stdlib-only error tree here.
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
from collections.abc import Callable, Sequence
from typing import Any, NoReturn

from pallet.client import limits
from pallet.client.remote import TLSOptions
from pallet.v1.errors import PalletError

__all__ = ["UsageError", "build_parser", "main"]

PROG = "pallet"


class UsageError(Exception):
    """Bad command-line usage; `code` is the exit status (2, or 125 for run)."""

    def __init__(self, message: str, code: int) -> None:
        super().__init__(message)
        self.code = code


class _Parser(argparse.ArgumentParser):
    """argparse, but errors raise UsageError (so main() decides the exit code) instead of exiting."""

    usage_exit = 2

    def error(self, message: str) -> NoReturn:
        self.print_usage(sys.stderr)
        raise UsageError(f"{self.prog}: error: {message}", self.usage_exit)


# ---------------------------------------------------------------------------------------------
# Grammar
# ---------------------------------------------------------------------------------------------

# Each verb: (name, "module:function", help, add_arguments, exit code for errors).
_Adder = Callable[[argparse.ArgumentParser], None]


def _add_run_like(p: argparse.ArgumentParser, run: bool) -> None:
    if run:
        p.add_argument("-d", "--detach", action="store_true", help="run in the background and print the id")
    p.add_argument("--rm", action="store_true", help="remove the container when it exits")
    p.add_argument("--restart", metavar="POLICY",
                   help="restart policy: no, on-failure[:MAX], always, unless-stopped")
    p.add_argument("-i", "--interactive", action="store_true", help="keep stdin open and forward ours")
    p.add_argument("-t", "--tty", action="store_true", help="give it a pseudo-terminal")
    p.add_argument("--init", action="store_true",
                   help="run an init (tini) as PID 1 that forwards signals and reaps zombies")
    if run:
        _add_detach_keys(p)
        _add_bool(p, "--sig-proxy", default=True,
                  help="forward the signals we get to the container, without -t (default true)")
    p.add_argument("-e", "--env", action="append", metavar="K=V", help="set an environment variable (K alone: ours)")
    p.add_argument("--env-file", action="append", metavar="FILE", help="read environment variables from a file")
    p.add_argument("-w", "--workdir", metavar="DIR", help="working directory inside the container")
    p.add_argument("-u", "--user", metavar="USER", help="user[:group] or uid[:gid]")
    p.add_argument("--name", metavar="NAME", help="name of the container")
    p.add_argument("--hostname", metavar="HOST", help="host name inside the container")
    p.add_argument("--entrypoint", metavar="CMD", help="override the image's entrypoint")
    p.add_argument("-l", "--label", action="append", metavar="K=V", help="set a label (K alone: empty value)")
    p.add_argument("--stop-signal", metavar="SIG", help="signal that stops the container")
    p.add_argument("--stop-timeout", type=int, metavar="N", help="seconds before SIGKILL after the stop signal")
    p.add_argument("--log-opt", action="append", metavar="K=V", help="log option: max-size=10m (rotate at), max-file=3 (files kept)")
    _add_health_flags(p)
    _add_network_flags(p)
    p.add_argument("-v", "--volume", action="append", metavar="[SRC:]DST[:MODE]",
                   help="mount a volume (NAME:DST, or DST alone: a new anonymous one) or a host path (/HOST:DST)")
    p.add_argument("--mount", action="append", metavar="type=TYPE,source=SRC,target=DST[,...]",
                   help="mount a volume, bind or tmpfs (docker's --mount keys)")
    p.add_argument("--tmpfs", action="append", metavar="DST[:OPTIONS]", help="mount a tmpfs (size=, mode=, flags)")
    p.add_argument("--volumes-from", action="append", metavar="CTR[:ro|rw]",
                   help="mount the volumes and binds of another container")
    from pallet.client.secopts import add_flags as add_security_flags

    add_security_flags(p)
    limits.add_flags(p)
    p.add_argument("image", metavar="IMAGE")
    p.add_argument("command", nargs=argparse.REMAINDER, metavar="CMD [ARG...]")
    if not run:
        p.set_defaults(detach=True)


def _add_health_flags(p: argparse.ArgumentParser) -> None:
    """run/create: the healthcheck (ContainerConfig.healthcheck), docker's flags."""
    p.add_argument("--health-cmd", metavar="CMD", help="command to run to check health (with /bin/sh -c)")
    p.add_argument("--health-interval", metavar="DURATION", help="time between checks (ms|s|m|h), default 30s")
    p.add_argument("--health-timeout", metavar="DURATION", help="longest a check may run (ms|s|m|h), default 30s")
    p.add_argument("--health-retries", type=int, metavar="N", help="failures in a row that make it unhealthy, default 3")
    p.add_argument("--health-start-period", metavar="DURATION",
                   help="time after a start when failures do not count yet (ms|s|m|h), default 0s")
    p.add_argument("--health-start-interval", metavar="DURATION",
                   help="time between checks during the start period (ms|s|m|h), default 5s")
    p.add_argument("--no-healthcheck", action="store_true", help="disable any healthcheck (the image's too)")


def _add_network_flags(p: argparse.ArgumentParser) -> None:
    """run/create: how the container is networked (ContainerConfig's network fields)."""
    p.add_argument("--network", "--net", dest="network", metavar="NETWORK",
                   help="bridge (default), host, none, container:CTR, or a network's name or id")
    p.add_argument("--network-alias", "--net-alias", dest="network_alias", action="append", metavar="NAME",
                   help="another name for the container on its network")
    p.add_argument("--ip", metavar="IPV4", help="static IPv4 address on its network")
    p.add_argument("--mac-address", metavar="MAC", help="MAC address of its interface")
    p.add_argument("-p", "--publish", action="append", metavar="[IP:][HOSTPORT:]PORT[/PROTO]",
                   help="publish a container port on the host (ranges 8000-8001:80-81; no HOSTPORT: a random one)")
    p.add_argument("-P", "--publish-all", action="store_true", help="publish every exposed port on a random host port")
    p.add_argument("--expose", action="append", metavar="PORT[/PROTO]", help="expose a port (or range) without publishing it")
    p.add_argument("--dns", action="append", metavar="IP", help="DNS server to forward lookups to")
    p.add_argument("--dns-search", action="append", metavar="DOMAIN", help="DNS search domain")
    p.add_argument("--dns-option", "--dns-opt", dest="dns_option", action="append", metavar="OPT",
                   help="resolv.conf option, e.g. ndots:2")
    p.add_argument("--add-host", action="append", metavar="NAME:IP",
                   help="add a line to /etc/hosts (IP host-gateway: the default network's gateway)")


def _add_run(p: argparse.ArgumentParser) -> None:
    _add_run_like(p, run=True)


def _add_create(p: argparse.ArgumentParser) -> None:
    _add_run_like(p, run=False)


def _add_update(p: argparse.ArgumentParser) -> None:
    limits.add_flags(p, update=True)
    p.add_argument("--restart", metavar="POLICY",
                   help="restart policy: no, on-failure[:MAX], always, unless-stopped")
    _add_containers(p)


def _add_containers(p: argparse.ArgumentParser) -> None:
    p.add_argument("containers", nargs="+", metavar="CONTAINER")


def _add_detach_keys(p: argparse.ArgumentParser) -> None:
    p.add_argument("--detach-keys", metavar="KEYS",
                   help='keys that detach without stopping it (default "ctrl-p,ctrl-q")')


def _add_start(p: argparse.ArgumentParser) -> None:
    p.add_argument("-a", "--attach", action="store_true", help="attach its output (and, with -i, our stdin)")
    p.add_argument("-i", "--interactive", action="store_true", help="forward our stdin (with -a)")
    _add_detach_keys(p)
    _add_containers(p)


def _add_attach(p: argparse.ArgumentParser) -> None:
    p.add_argument("--no-stdin", action="store_true", help="do not forward our stdin")
    _add_bool(p, "--sig-proxy", default=True,
              help="forward the signals we get to the container, without a terminal (default true)")
    _add_detach_keys(p)
    p.add_argument("container", metavar="CONTAINER")


def _add_stop(p: argparse.ArgumentParser) -> None:
    p.add_argument("-s", "--signal", default="", metavar="SIG",
                   help="signal that stops it (default: the container's stop signal)")
    p.add_argument("-t", "--time", "--timeout", dest="time", type=int, metavar="N",
                   help="seconds to wait before killing it")
    _add_containers(p)


def _add_kill(p: argparse.ArgumentParser) -> None:
    p.add_argument("-s", "--signal", default="", metavar="SIG", help="signal to send (default KILL)")
    _add_containers(p)


def _add_rename(p: argparse.ArgumentParser) -> None:
    p.add_argument("container", metavar="CONTAINER")
    p.add_argument("new_name", metavar="NEW_NAME")


def _add_rm(p: argparse.ArgumentParser) -> None:
    p.add_argument("-f", "--force", action="store_true", help="kill it first when it is running")
    p.add_argument("-v", "--volumes", action="store_true", help="remove its anonymous volumes too")
    _add_containers(p)


def _add_ps(p: argparse.ArgumentParser) -> None:
    p.add_argument("-a", "--all", action="store_true", help="show all containers, not only running ones")
    p.add_argument("-q", "--quiet", action="store_true", help="only print ids")
    p.add_argument("--no-trunc", action="store_true", help="do not truncate output")
    p.add_argument("-f", "--filter", action="append", metavar="K=V", help="filter (id, name, label, status, ancestor, exited, health)")
    p.add_argument("--format", metavar="TEMPLATE", help='Go template, "table TEMPLATE" or "json"')


def _add_inspect(p: argparse.ArgumentParser) -> None:
    p.add_argument("-f", "--format", metavar="TEMPLATE", help="Go template applied to each object")
    p.add_argument("--type", choices=("container", "image", "network"), help="only look for this kind of object")
    p.add_argument("names", nargs="+", metavar="NAME")


def _add_container_inspect(p: argparse.ArgumentParser) -> None:
    p.add_argument("-f", "--format", metavar="TEMPLATE", help="Go template applied to each object")
    p.add_argument("names", nargs="+", metavar="CONTAINER")
    p.set_defaults(type="container")


def _add_image_inspect(p: argparse.ArgumentParser) -> None:
    p.add_argument("-f", "--format", metavar="TEMPLATE", help="Go template applied to each object")
    p.add_argument("names", nargs="+", metavar="IMAGE")
    p.set_defaults(type="image")


def _add_port(p: argparse.ArgumentParser) -> None:
    p.add_argument("container", metavar="CONTAINER")
    p.add_argument("port", nargs="?", metavar="PRIVATE_PORT[/PROTO]")


def _add_logs(p: argparse.ArgumentParser) -> None:
    p.add_argument("-f", "--follow", action="store_true", help="keep streaming until the container stops")
    p.add_argument("-n", "--tail", default="all", metavar="N", help='only the last N lines ("all")')
    p.add_argument("-t", "--timestamps", action="store_true", help="prefix each line with its time")
    p.add_argument("--since", metavar="T", help="RFC 3339 time, Unix seconds or duration (10m)")
    p.add_argument("--until", metavar="T", help="RFC 3339 time, Unix seconds or duration (10m)")
    p.add_argument("container", metavar="CONTAINER")


def _add_exec(p: argparse.ArgumentParser) -> None:
    p.add_argument("-i", "--interactive", action="store_true", help="forward our stdin")
    p.add_argument("-t", "--tty", action="store_true", help="give it a pseudo-terminal")
    _add_detach_keys(p)
    p.add_argument("-d", "--detach", action="store_true", help="start it and return")
    p.add_argument("-e", "--env", action="append", metavar="K=V", help="set an environment variable")
    p.add_argument("--env-file", action="append", metavar="FILE", help="read environment variables from a file")
    p.add_argument("-w", "--workdir", metavar="DIR", help="working directory")
    p.add_argument("-u", "--user", metavar="USER", help="user[:group] or uid[:gid]")
    p.add_argument("container", metavar="CONTAINER")
    p.add_argument("command", nargs=argparse.REMAINDER, metavar="CMD [ARG...]")


def _add_events(p: argparse.ArgumentParser) -> None:
    p.add_argument("-f", "--filter", action="append", metavar="K=V",
                   help="filter (type, event, container, image, network, label)")
    p.add_argument("--since", metavar="T", help="replay events since this time")
    p.add_argument("--until", metavar="T", help="stop after events up to this time")
    p.add_argument("--since-seq", type=int, default=None, metavar="N",
                   help="replay events after sequence number N (lines get a [seq] prefix)")
    p.add_argument("--format", metavar="TEMPLATE", help='Go template or "json"')


def _add_images(p: argparse.ArgumentParser) -> None:
    p.add_argument("-a", "--all", action="store_true", help="show all images")
    p.add_argument("-q", "--quiet", action="store_true", help="only print ids")
    p.add_argument("--no-trunc", action="store_true", help="do not truncate output")
    p.add_argument("-f", "--filter", action="append", metavar="K=V", help="filter (reference, label, dangling)")
    p.add_argument("--format", metavar="TEMPLATE", help='Go template, "table TEMPLATE" or "json"')
    p.add_argument("reference", nargs="?", metavar="REPOSITORY[:TAG]")


def _add_rmi(p: argparse.ArgumentParser) -> None:
    p.add_argument("-f", "--force", action="store_true", help="remove even when used, and every reference")
    p.add_argument("images", nargs="+", metavar="IMAGE")


def _add_tag(p: argparse.ArgumentParser) -> None:
    p.add_argument("source", metavar="SOURCE")
    p.add_argument("target", metavar="TARGET")


def _add_import(p: argparse.ArgumentParser) -> None:
    p.add_argument("-c", "--change", action="append", metavar="INSTRUCTION",
                   help='Dockerfile instruction, e.g. CMD ["sh"]')
    p.add_argument("-m", "--message", default="", metavar="MSG", help="commit message")
    p.add_argument("file", metavar="FILE|-")
    p.add_argument("reference", nargs="?", default="", metavar="REFERENCE")


def _add_load(p: argparse.ArgumentParser) -> None:
    p.add_argument("-i", "--input", metavar="FILE", help="read the archive from FILE instead of stdin")
    p.add_argument("-q", "--quiet", action="store_true", help="suppress progress output")


def _add_pull(p: argparse.ArgumentParser) -> None:
    p.add_argument("--platform", metavar="OS/ARCH[/VARIANT]", help="platform to pick from a multi-platform image")
    p.add_argument("-q", "--quiet", action="store_true", help="suppress progress output")
    p.add_argument("reference", metavar="NAME[:TAG|@DIGEST]")


def _add_push(p: argparse.ArgumentParser) -> None:
    p.add_argument("-q", "--quiet", action="store_true", help="suppress progress output")
    p.add_argument("reference", metavar="NAME[:TAG]")


def _add_login(p: argparse.ArgumentParser) -> None:
    p.add_argument("-u", "--username", metavar="USER", help="user name")
    p.add_argument("-p", "--password", metavar="PASSWORD", help="password (prefer --password-stdin)")
    p.add_argument("--password-stdin", action="store_true", help="read the password from stdin")
    p.add_argument("server", nargs="?", default="", metavar="SERVER")


def _add_logout(p: argparse.ArgumentParser) -> None:
    p.add_argument("server", nargs="?", default="", metavar="SERVER")


def _add_save(p: argparse.ArgumentParser) -> None:
    p.add_argument("-o", "--output", metavar="FILE", help="write to FILE instead of stdout")
    p.add_argument("--format", choices=("docker", "oci"), default="docker",
                   help="docker (docker save layout, also an OCI layout) or oci (OCI layout only)")
    p.add_argument("images", nargs="+", metavar="IMAGE")


def _add_export(p: argparse.ArgumentParser) -> None:
    p.add_argument("-o", "--output", metavar="FILE", help="write to FILE instead of stdout")
    p.add_argument("container", metavar="CONTAINER")


def _add_cp(p: argparse.ArgumentParser) -> None:
    p.add_argument("-a", "--archive", action="store_true", help="archive mode (copy all uid/gid information)")
    p.add_argument("-L", "--follow-link", dest="follow_link", action="store_true",
                   help="always follow symlinks in SRC_PATH")
    p.add_argument("-q", "--quiet", action="store_true", help="print nothing but errors")
    p.add_argument("source", metavar="SRC_PATH", help="CONTAINER:PATH, a local path, or - (a tar on stdin)")
    p.add_argument("destination", metavar="DEST_PATH", help="CONTAINER:PATH, a local path, or - (a tar on stdout)")
def _add_diff(p: argparse.ArgumentParser) -> None:
    p.add_argument("container", metavar="CONTAINER")


def _truth(value: str) -> bool | None:
    """docker's boolean flag values (--pause=false); None for anything else."""
    lowered = value.lower()
    if lowered in ("1", "t", "true"):
        return True
    if lowered in ("0", "f", "false"):
        return False
    return None


def _add_bool(p: argparse.ArgumentParser, *flags: str, default: bool, help: str) -> None:
    """A docker boolean flag: `--pause` sets it, `--pause=false` (or `-p=false`) clears
    it, and the next word is never its value (`commit -p CTR`). The `=false` spelling is
    rewritten by `_attach_dash_values` into the hidden `--no-NAME`."""
    dest = max(flags, key=len).lstrip("-").replace("-", "_")
    p.add_argument(*flags, dest=dest, action="store_const", const=True, default=default, help=help)
    p.add_argument(f"--no-{dest.replace('_', '-')}", dest=dest, action="store_const", const=False,
                   help=argparse.SUPPRESS)


def _add_commit(p: argparse.ArgumentParser) -> None:
    p.add_argument("-a", "--author", metavar="AUTHOR", help='author (e.g., "Jane <jane@example.com>")')
    p.add_argument("-c", "--change", action="append", metavar="INSTRUCTION",
                   help="apply a Dockerfile instruction to the image (CMD, ENTRYPOINT, ENV, EXPOSE, LABEL, USER, VOLUME, WORKDIR, STOPSIGNAL)")
    p.add_argument("-m", "--message", metavar="MESSAGE", help="commit message")
    _add_bool(p, "-p", "--pause", default=True,
              help="freeze the container while it is committed (default true; --pause=false to not)")
    p.add_argument("container", metavar="CONTAINER")
    p.add_argument("reference", nargs="?", metavar="REPOSITORY[:TAG]")


def _add_container_prune(p: argparse.ArgumentParser) -> None:
    p.add_argument("-f", "--force", action="store_true", help="do not ask for confirmation")
    p.add_argument("--filter", action="append", metavar="K=V", help="filter (until, label, label!)")


def _add_system_prune(p: argparse.ArgumentParser) -> None:
    p.add_argument("-a", "--all", action="store_true", help="remove every unused image, not only dangling ones")
    p.add_argument("--volumes", action="store_true", help="remove anonymous volumes no container uses too")
    p.add_argument("-f", "--force", action="store_true", help="do not ask for confirmation")
    p.add_argument("--filter", action="append", metavar="K=V", help="filter (until, label, label!)")


def _add_history(p: argparse.ArgumentParser) -> None:
    p.add_argument("-q", "--quiet", action="store_true", help="only print ids")
    p.add_argument("--no-trunc", action="store_true", help="do not truncate output")
    p.add_argument("image", metavar="IMAGE")


def _add_prune(p: argparse.ArgumentParser) -> None:
    p.add_argument("-a", "--all", action="store_true", help="remove every image no container uses")
    p.add_argument("-f", "--force", action="store_true", help="do not ask for confirmation")


def _add_version(p: argparse.ArgumentParser) -> None:
    p.add_argument("-f", "--format", metavar="TEMPLATE", help="Go template over {Client, Server}")


def _add_info(p: argparse.ArgumentParser) -> None:
    p.add_argument("-f", "--format", metavar="TEMPLATE", help="Go template over the info")


def _add_network_create(p: argparse.ArgumentParser) -> None:
    p.add_argument("-d", "--driver", default="", metavar="DRIVER", help="driver (bridge)")
    p.add_argument("--subnet", metavar="CIDR", help="IPv4 subnet (default: one from the daemon's pool)")
    p.add_argument("--gateway", metavar="IP", help="gateway inside the subnet (default: its first address)")
    p.add_argument("--ip-range", metavar="CIDR", help="allocate container addresses from this sub-range")
    p.add_argument("--internal", action="store_true", help="no route out of the network")
    p.add_argument("--label", action="append", metavar="K=V", help="set a label")
    p.add_argument("-o", "--opt", action="append", metavar="K=V",
                   help="driver option: com.docker.network.bridge.name=NAME, com.docker.network.driver.mtu=N")
    p.add_argument("name", metavar="NAME")


def _add_network_ls(p: argparse.ArgumentParser) -> None:
    p.add_argument("-q", "--quiet", action="store_true", help="only print ids")
    p.add_argument("--no-trunc", action="store_true", help="do not truncate output")
    p.add_argument("-f", "--filter", action="append", metavar="K=V",
                   help="filter (id, name, label, driver, type=builtin|custom, dangling)")
    p.add_argument("--format", metavar="TEMPLATE", help='Go template, "table TEMPLATE" or "json"')


def _add_network_inspect(p: argparse.ArgumentParser) -> None:
    p.add_argument("-f", "--format", metavar="TEMPLATE", help="Go template applied to each network")
    p.add_argument("networks", nargs="+", metavar="NETWORK")


def _add_networks(p: argparse.ArgumentParser) -> None:
    p.add_argument("networks", nargs="+", metavar="NETWORK")


def _add_network_connect(p: argparse.ArgumentParser) -> None:
    p.add_argument("--alias", action="append", metavar="NAME", help="another name for the container on this network")
    p.add_argument("--ip", metavar="IPV4", help="static IPv4 address on this network")
    p.add_argument("network", metavar="NETWORK")
    p.add_argument("container", metavar="CONTAINER")


def _add_network_disconnect(p: argparse.ArgumentParser) -> None:
    p.add_argument("-f", "--force", action="store_true", help="drop the attachment even if the container is gone")
    p.add_argument("network", metavar="NETWORK")
    p.add_argument("container", metavar="CONTAINER")


def _add_network_prune(p: argparse.ArgumentParser) -> None:
    p.add_argument("-f", "--force", action="store_true", help="do not ask for confirmation")
    p.add_argument("--filter", action="append", metavar="K=V", help="filter (label, until)")


def _add_build(p: argparse.ArgumentParser) -> None:
    p.add_argument("-t", "--tag", action="append", metavar="NAME[:TAG]", help="name (and tag) the image; repeatable")
    p.add_argument("-f", "--file", metavar="FILE",
                   help="the Dockerfile (relative to the current directory; default PATH/Dockerfile; - for stdin)")
    p.add_argument("--build-arg", action="append", metavar="K=V",
                   help="set a build-time variable (K alone: its value from the environment)")
    p.add_argument("--label", action="append", metavar="K=V", help="set a label on the image")
    p.add_argument("--target", metavar="STAGE", help="build up to this stage")
    p.add_argument("--no-cache", action="store_true", help="do not use the cache")
    p.add_argument("--pull", action="store_true", help="always pull the FROM images")
    p.add_argument("--network", metavar="NETWORK", help="networking for RUN (default bridge, none, host, a network)")
    p.add_argument("--platform", metavar="OS/ARCH", help="the platform to build for")
    p.add_argument("--iidfile", metavar="FILE", help="write the image id to FILE")
    p.add_argument("-q", "--quiet", action="store_true", help="print only the image id")
    p.add_argument("--progress", choices=("auto", "plain", "quiet"), default="auto",
                   help="auto: a live view on a terminal, plain lines otherwise; plain; quiet: only the image id")
    p.add_argument("path", metavar="PATH|-", help="the context: a directory, or - for a tar or a Dockerfile on stdin")


def _add_volume_create(p: argparse.ArgumentParser) -> None:
    p.add_argument("-d", "--driver", default="", metavar="DRIVER", help="driver (local)")
    p.add_argument("--label", action="append", metavar="K=V", help="set a label")
    p.add_argument("-o", "--opt", action="append", metavar="K=V",
                   help="driver option: type=tmpfs|none|FSTYPE, device=WHAT, o=MOUNT-OPTIONS")
    p.add_argument("name", nargs="?", metavar="VOLUME", help="name (default: a generated one)")


def _add_volume_ls(p: argparse.ArgumentParser) -> None:
    p.add_argument("-q", "--quiet", action="store_true", help="only print names")
    p.add_argument("-f", "--filter", action="append", metavar="K=V",
                   help="filter (name, label, label!, driver, dangling)")
    p.add_argument("--format", metavar="TEMPLATE", help='Go template, "table TEMPLATE" or "json"')


def _add_volume_inspect(p: argparse.ArgumentParser) -> None:
    p.add_argument("-f", "--format", metavar="TEMPLATE", help="Go template applied to each volume")
    p.add_argument("volumes", nargs="+", metavar="VOLUME")


def _add_volume_rm(p: argparse.ArgumentParser) -> None:
    p.add_argument("-f", "--force", action="store_true", help="an unknown volume is not an error")
    p.add_argument("volumes", nargs="+", metavar="VOLUME")


def _add_volume_prune(p: argparse.ArgumentParser) -> None:
    p.add_argument("-a", "--all", action="store_true", help="named volumes too, not only anonymous ones")
    p.add_argument("-f", "--force", action="store_true", help="do not ask for confirmation")
    p.add_argument("--filter", action="append", metavar="K=V", help="filter (label, label!)")


def _add_nothing(p: argparse.ArgumentParser) -> None:
    return None


def _add_top(p: argparse.ArgumentParser) -> None:
    p.add_argument("container", metavar="CONTAINER")
    p.add_argument("ps_args", nargs=argparse.REMAINDER, metavar="[ps OPTIONS]",
                   help="options for the host's ps (default -ef)")


def _add_stats(p: argparse.ArgumentParser) -> None:
    p.add_argument("-a", "--all", action="store_true", help="show all containers (default: running ones)")
    p.add_argument("--no-stream", action="store_true", help="show one sample and exit")
    p.add_argument("--no-trunc", action="store_true", help="do not truncate output")
    p.add_argument("--format", metavar="TEMPLATE", help='Go template, "table TEMPLATE" or "json"')
    p.add_argument("containers", nargs="*", metavar="CONTAINER")


_C = "pallet.client.verbs_containers"
_I = "pallet.client.verbs_images"
_S = "pallet.client.verbs_system"
_R = "pallet.client.verbs_registry"
_N = "pallet.client.verbs_networks"
_V = "pallet.client.verbs_volumes"
_D = "pallet.client.verbs_changes"
_P = "pallet.client.verbs_prune"
_T = "pallet.client.verbs_stats"

# name -> (target, help, adder, error exit code)
_CONTAINER_VERBS: dict[str, tuple[str, str, _Adder, int]] = {
    "run": (f"{_C}:run", "create and start a container", _add_run, 125),
    "create": (f"{_C}:create", "create a container", _add_create, 125),
    "start": (f"{_C}:start", "start containers", _add_start, 1),
    "attach": ("pallet.client.attached:attach", "attach to a running container's stdio", _add_attach, 1),
    "stop": (f"{_C}:stop", "stop containers", _add_stop, 1),
    "kill": (f"{_C}:kill", "send a signal to containers", _add_kill, 1),
    "restart": (f"{_C}:restart", "restart containers", _add_stop, 1),
    "rm": (f"{_C}:rm", "remove containers", _add_rm, 1),
    "rename": (f"{_C}:rename", "rename a container", _add_rename, 1),
    "ls": (f"{_C}:ps", "list containers", _add_ps, 1),
    "wait": (f"{_C}:wait", "wait for containers to stop; print their exit codes", _add_containers, 1),
    "inspect": (f"{_C}:inspect", "show containers in detail", _add_container_inspect, 1),
    "logs": (f"{_C}:logs", "show a container's output", _add_logs, 1),
    "exec": (f"{_C}:exec_", "run a command in a running container", _add_exec, 1),
    "port": (f"{_N}:port", "list a container's published ports", _add_port, 1),
    "cp": ("pallet.client.verbs_cp:cp", "copy files between a container and the host", _add_cp, 1),
    "diff": (f"{_D}:diff", "list the files a container changed", _add_diff, 1),
    "commit": (f"{_D}:commit", "make an image of a container's changes", _add_commit, 1),
    "export": (f"{_R}:export", "export a container's filesystem as a tar archive", _add_export, 1),
    "prune": (f"{_P}:container_prune", "remove all stopped containers", _add_container_prune, 1),
    "pause": (f"{_T}:pause", "pause all processes in containers", _add_containers, 1),
    "unpause": (f"{_T}:unpause", "unpause all processes in containers", _add_containers, 1),
    "top": (f"{_T}:top", "show the processes of a container", _add_top, 1),
    "update": ("pallet.client.verbs_limits:update", "change containers' resource limits and restart policy", _add_update, 1),
    "stats": (f"{_T}:stats", "show containers' resource usage (live)", _add_stats, 1),
}
_CONTAINER_ALIASES: dict[str, tuple[str, ...]] = {"ls": ("ps", "list")}

_IMAGE_VERBS: dict[str, tuple[str, str, _Adder, int]] = {
    "build": ("pallet.client.verbs_build:build", "build an image from a Dockerfile", _add_build, 1),
    "ls": (f"{_I}:images", "list images", _add_images, 1),
    "rm": (f"{_I}:rmi", "remove images", _add_rmi, 1),
    "tag": (f"{_I}:tag", "add a reference to an image", _add_tag, 1),
    "import": (f"{_I}:import_", "make an image from a root filesystem tar", _add_import, 1),
    "load": (f"{_I}:load", "load images from a docker-save or OCI archive", _add_load, 1),
    "inspect": (f"{_C}:inspect", "show images in detail", _add_image_inspect, 1),
    "pull": (f"{_R}:pull", "pull an image from a registry", _add_pull, 1),
    "push": (f"{_R}:push", "push an image to a registry", _add_push, 1),
    "save": (f"{_R}:save", "save images to a tar archive", _add_save, 1),
    "history": (f"{_R}:history", "show the history of an image", _add_history, 1),
    "prune": (f"{_R}:prune", "remove unused images", _add_prune, 1),
}
_IMAGE_ALIASES: dict[str, tuple[str, ...]] = {"ls": ("list",)}

_TOP_VERBS: dict[str, tuple[str, str, _Adder, int]] = {
    **{k: v for k, v in _CONTAINER_VERBS.items() if k not in ("ls", "inspect", "prune")},
    "ps": (f"{_C}:ps", "list containers", _add_ps, 1),
    "inspect": (f"{_C}:inspect", "show containers or images in detail", _add_inspect, 1),
    "images": (f"{_I}:images", "list images", _add_images, 1),
    "rmi": (f"{_I}:rmi", "remove images", _add_rmi, 1),
    "build": _IMAGE_VERBS["build"],
    "tag": _IMAGE_VERBS["tag"],
    "import": _IMAGE_VERBS["import"],
    "load": _IMAGE_VERBS["load"],
    "pull": _IMAGE_VERBS["pull"],
    "push": _IMAGE_VERBS["push"],
    "save": _IMAGE_VERBS["save"],
    "history": _IMAGE_VERBS["history"],
    "login": (f"{_R}:login", "log in to a registry", _add_login, 1),
    "logout": (f"{_R}:logout", "log out from a registry", _add_logout, 1),
    "events": (f"{_S}:events", "stream the daemon's events", _add_events, 1),
    "version": (f"{_S}:version", "show client and daemon versions", _add_version, 1),
    "info": (f"{_S}:info", "show what the daemon holds", _add_info, 1),
    "compose": ("pallet.client.verbs_compose:compose", "run Docker Compose against the daemon",
                _add_nothing, 1),
}

_NETWORK_VERBS: dict[str, tuple[str, str, _Adder, int]] = {
    "create": (f"{_N}:create", "create a network", _add_network_create, 1),
    "ls": (f"{_N}:ls", "list networks", _add_network_ls, 1),
    "inspect": (f"{_N}:inspect", "show networks in detail", _add_network_inspect, 1),
    "rm": (f"{_N}:rm", "remove networks", _add_networks, 1),
    "connect": (f"{_N}:connect", "attach a container to a network", _add_network_connect, 1),
    "disconnect": (f"{_N}:disconnect", "detach a container from a network", _add_network_disconnect, 1),
    "prune": (f"{_N}:prune", "remove every network no container uses", _add_network_prune, 1),
}
_NETWORK_ALIASES: dict[str, tuple[str, ...]] = {"ls": ("list",), "rm": ("remove",)}

_VOLUME_VERBS: dict[str, tuple[str, str, _Adder, int]] = {
    "create": (f"{_V}:create", "create a volume", _add_volume_create, 1),
    "ls": (f"{_V}:ls", "list volumes", _add_volume_ls, 1),
    "inspect": (f"{_V}:inspect", "show volumes in detail", _add_volume_inspect, 1),
    "rm": (f"{_V}:rm", "remove volumes", _add_volume_rm, 1),
    "prune": (f"{_V}:prune", "remove unused volumes", _add_volume_prune, 1),
}
_VOLUME_ALIASES: dict[str, tuple[str, ...]] = {"ls": ("list",), "rm": ("remove",)}

_SYSTEM_VERBS: dict[str, tuple[str, str, _Adder, int]] = {
    "df": (f"{_R}:df", "show disk usage", _add_nothing, 1),
    "prune": (f"{_P}:system_prune", "remove unused data (stopped containers, networks, images)", _add_system_prune, 1),
    "info": _TOP_VERBS["info"],
    "events": _TOP_VERBS["events"],
}


def _register(
    sub: Any, verbs: dict[str, tuple[str, str, _Adder, int]], aliases: dict[str, tuple[str, ...]], prefix: str
) -> None:
    for name, (target, help_text, adder, error_exit) in verbs.items():
        p = sub.add_parser(name, help=help_text, aliases=list(aliases.get(name, ())), description=help_text,
                           allow_abbrev=False)
        # docker exits 125 for any failure of `run` before the container runs, usage included.
        p.usage_exit = 125 if name == "run" else 2
        adder(p)
        p.set_defaults(handler=target, error_exit=error_exit, verb=f"{prefix}{name}", verb_parser=p)


_EPILOG = """\
remote daemons:
  palletd serves tcp:// only with mutual TLS: each side proves itself with a
  certificate the other's CA signed. Give the CLI palletd's CA and a client
  certificate signed by the CA palletd trusts (palletd --tlscacert):

    pallet -H tcp://10.0.0.5:2376 --tlsverify --tlscacert ca.pem \\
        --tlscert cert.pem --tlskey key.pem ps

  or put ca.pem, cert.pem and key.pem in ~/.pallet (or $PALLET_CERT_PATH) and
  export PALLET_HOST=tcp://10.0.0.5:2376 PALLET_TLS_VERIFY=1.

environment:
  PALLET_HOST             the daemon (-H)
  PALLET_TLS_VERIFY       1: mutual TLS for tcp:// (--tlsverify)
  PALLET_CERT_PATH        directory of ca.pem, cert.pem, key.pem (default ~/.pallet)
  PALLET_CONNECT_TIMEOUT  seconds to wait for palletd to answer (default 20)
"""


def build_parser(only: str | None = None) -> argparse.ArgumentParser:
    """The full `pallet` grammar, or with `only` just that top-level verb's.

    Building all ~45 sub-grammars costs ~10 ms per invocation; a command line whose verb
    is known needs only its own (same help, same errors).
    """
    parser = _Parser(
        prog=PROG,
        description="pallet: a container engine. Talks to palletd over gRPC.",
        epilog=_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
        allow_abbrev=False,
    )
    parser.add_argument(
        "-H", "--host", metavar="URL",
        help="daemon socket, unix:///run/pallet/pallet.sock (default: $PALLET_HOST or that), "
        "or a remote palletd at tcp://HOST:PORT, always over mutual TLS",
    )
    parser.add_argument(
        "--tlsverify", action="store_true",
        help="use mutual TLS for tcp:// and check palletd's certificate (default: $PALLET_TLS_VERIFY)",
    )
    parser.add_argument("--tlscacert", metavar="FILE", default="",
                        help="CA that signed palletd's certificate (default: $PALLET_CERT_PATH/ca.pem, ~/.pallet/ca.pem)")
    parser.add_argument("--tlscert", metavar="FILE", default="",
                        help="our client certificate (default: $PALLET_CERT_PATH/cert.pem, ~/.pallet/cert.pem)")
    parser.add_argument("--tlskey", metavar="FILE", default="",
                        help="our client certificate's key (default: $PALLET_CERT_PATH/key.pem, ~/.pallet/key.pem)")
    sub = parser.add_subparsers(title="commands", metavar="COMMAND", parser_class=_Parser)
    if only is not None:
        _register(sub, {only: _TOP_VERBS[only]}, {}, "")
        return parser
    _register(sub, _TOP_VERBS, {}, "")
    container = sub.add_parser("container", help="manage containers", allow_abbrev=False)
    container_sub = container.add_subparsers(title="commands", metavar="COMMAND", parser_class=_Parser)
    _register(container_sub, _CONTAINER_VERBS, _CONTAINER_ALIASES, "container ")
    container.set_defaults(group=container)
    image = sub.add_parser("image", help="manage images", allow_abbrev=False)
    image_sub = image.add_subparsers(title="commands", metavar="COMMAND", parser_class=_Parser)
    _register(image_sub, _IMAGE_VERBS, _IMAGE_ALIASES, "image ")
    image.set_defaults(group=image)
    network = sub.add_parser("network", help="manage networks", allow_abbrev=False)
    network_sub = network.add_subparsers(title="commands", metavar="COMMAND", parser_class=_Parser)
    _register(network_sub, _NETWORK_VERBS, _NETWORK_ALIASES, "network ")
    network.set_defaults(group=network)
    volume = sub.add_parser("volume", help="manage volumes", allow_abbrev=False)
    volume_sub = volume.add_subparsers(title="commands", metavar="COMMAND", parser_class=_Parser)
    _register(volume_sub, _VOLUME_VERBS, _VOLUME_ALIASES, "volume ")
    volume.set_defaults(group=volume)
    system = sub.add_parser("system", help="manage the daemon", allow_abbrev=False)
    system_sub = system.add_subparsers(title="commands", metavar="COMMAND", parser_class=_Parser)
    _register(system_sub, _SYSTEM_VERBS, {}, "system ")
    system.set_defaults(group=system)
    return parser


def _subparsers(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            return dict(action.choices)
    return {}


def _value_options(parser: argparse.ArgumentParser) -> dict[str, str]:
    """Option string -> its long spelling, for options that take exactly one value."""
    out: dict[str, str] = {}
    for action in parser._actions:
        if action.option_strings and action.nargs is None and action.const is None:
            long = max(action.option_strings, key=len)
            for option in action.option_strings:
                out[option] = long
    return out


def _bool_options(parser: argparse.ArgumentParser) -> dict[str, str]:
    """Option string -> its long spelling, for the `_add_bool` flags that have a --no-."""
    negations = {a.dest for a in parser._actions if a.help == argparse.SUPPRESS and a.const is False}
    out: dict[str, str] = {}
    for action in parser._actions:
        if action.const is True and action.dest in negations:
            long = max(action.option_strings, key=len)
            for option in action.option_strings:
                out[option] = long
    return out


def _attach_dash_values(parser: argparse.ArgumentParser, argv: list[str]) -> list[str]:
    """Rewrite `--name -x` as `--name=-x`, as docker's flag parser reads it, and a boolean
    flag's `--pause=false` as `--no-pause` (see `_add_bool`).

    argparse refuses an option value that starts with "-" unless it is attached; docker
    (pflag) takes the next word whatever it looks like, so `--name -dash` reaches the daemon
    (and gets its "invalid name" error) and `-e -X=1` sets a variable.
    """
    out: list[str] = []
    i = 0
    current = parser
    values = _value_options(parser)
    subparsers = _subparsers(parser)
    while i < len(argv):
        token = argv[i]
        if token == "--":
            out.extend(argv[i:])
            break
        flag, eq, value = token.partition("=")
        if eq and token.startswith("-") and flag in (bools := _bool_options(current)):
            truth = _truth(value)
            if truth is None:
                raise UsageError(f"invalid argument {value!r} for {flag!r}: use true or false", 125)
            out.append(bools[flag] if truth else f"--no-{bools[flag].lstrip('-')}")
            i += 1
            continue
        if token in values and i + 1 < len(argv) and argv[i + 1].startswith("-") and argv[i + 1] != "--":
            out.append(f"{values[token]}={argv[i + 1]}")
            i += 2
            continue
        out.append(token)
        i += 1
        if token.startswith("-") or token in values:
            if token in values:  # its value is the next word
                if i < len(argv):
                    out.append(argv[i])
                    i += 1
            continue
        if token in subparsers:  # a verb: go on with its own options
            current = subparsers[token]
            values = _value_options(current)
            subparsers = _subparsers(current)
            continue
        if any(a.nargs == argparse.REMAINDER for a in current._actions):
            # run/create/exec: after the first positional the rest is the command's own.
            positionals = [a for a in current._actions if not a.option_strings and a.nargs != argparse.REMAINDER]
            if len(positionals) <= 1:
                out.extend(argv[i:])
                break
    return out


#: The options before the verb that take a value.
_GLOBAL_VALUE_OPTIONS = ("-H", "--host", "--tlscacert", "--tlscert", "--tlskey")


def _top_verb(argv: Sequence[str]) -> str | None:
    """The command line's top-level verb when it is a known one; None otherwise (no verb,
    --help, an unknown option or verb: the full grammar answers those)."""
    at = _top_verb_index(argv)
    return argv[at] if at >= 0 else None


def _top_verb_index(argv: Sequence[str]) -> int:
    """Where `_top_verb` is in argv; -1 when there is none."""
    i = 0
    while i < len(argv):
        token = argv[i]
        if token in _GLOBAL_VALUE_OPTIONS:
            i += 2
        elif token == "--tlsverify" or token.partition("=")[0] in _GLOBAL_VALUE_OPTIONS \
                or (token.startswith("-H") and len(token) > 2):
            i += 1
        elif token in _TOP_VERBS:
            return i
        else:
            return -1
    return -1


def parse_args(argv: Sequence[str]) -> argparse.Namespace:
    """Parse a command line; raises UsageError. Adds `host` (resolved) to the namespace."""
    verb = _top_verb(argv)
    if verb == "compose":
        # Everything after the verb is Compose's own, --help included.
        at = _top_verb_index(argv)
        args = build_parser(verb).parse_args(list(argv[: at + 1]))
        args.compose_args = list(argv[at + 1:])
        args.host = args.host or os.environ.get("PALLET_HOST") or "unix:///run/pallet/pallet.sock"
        return args
    parser = build_parser(verb)
    args, extra = parser.parse_known_args(_attach_dash_values(parser, list(argv)))
    if extra:
        if hasattr(args, "handler"):
            raise_usage(args, f"unrecognized arguments: {' '.join(extra)}")
        parser.error(f"unrecognized arguments: {' '.join(extra)}")
    if getattr(args, "verb", None) in ("exec", "container exec") and not args.command:
        raise_usage(args, "the following arguments are required: CMD")
    args.host = args.host or os.environ.get("PALLET_HOST") or "unix:///run/pallet/pallet.sock"
    args.tls = TLSOptions(args.tlsverify, args.tlscacert, args.tlscert, args.tlskey)
    return args


def raise_usage(args: argparse.Namespace, message: str) -> NoReturn:
    """A usage error found after parsing, reported by the verb's own parser."""
    args.verb_parser.error(message)
    raise AssertionError("unreachable: ArgumentParser.error raises")


def _run_verb(args: argparse.Namespace) -> int:
    import importlib

    module_name, _, func_name = args.handler.partition(":")
    func = getattr(importlib.import_module(module_name), func_name)
    return int(func(args))


def main(argv: Sequence[str] | None = None) -> int:
    """Run one `pallet` command line; returns the exit status.

    Without `argv` (the `pallet` program itself) it does not return: once stdout and
    stderr are flushed it ends the process with os._exit. The interpreter's teardown
    (threads, freeing every module) costs ~10 ms of CPU that a finished
    command does not need, and 20 `pallet run -d` at once share two cores.
    """
    if argv is not None:
        return _main(argv)
    signal.signal(signal.SIGINT, _on_interrupt)
    code = _main(sys.argv[1:])
    _flush_quietly()
    try:
        sys.stderr.flush()
    except (OSError, ValueError):
        pass
    os._exit(code)


_interrupted = False


def _on_interrupt(signum: int, frame: object) -> None:
    # Python's own SIGINT handling, plus a note of it: a Ctrl-C that lands inside a gRPC
    # stream's wait surfaces as the call's CANCELLED error, not as KeyboardInterrupt.
    global _interrupted
    _interrupted = True
    raise KeyboardInterrupt


def _main(argv: Sequence[str]) -> int:
    try:
        args = parse_args(argv)
    except UsageError as exc:
        print(str(exc), file=sys.stderr)
        return exc.code
    except SystemExit as exc:  # --help
        return exc.code if isinstance(exc.code, int) else 0
    if not hasattr(args, "handler"):
        group = getattr(args, "group", None)
        (group or build_parser()).print_help()
        return 0
    try:
        return _run_verb(args)
    except PalletError as exc:
        _flush_quietly()
        if _interrupted:  # Ctrl-C cancelled the call: that is no error to report
            return 130
        print(f"Error: {exc.message}", file=sys.stderr)
        return int(args.error_exit)
    except KeyboardInterrupt:
        # Ctrl-C while attached, following logs or events: leave quietly like docker.
        _flush_quietly()
        return 130
    except BrokenPipeError:
        # Our reader went away (`pallet logs x | head`): stop without a traceback.
        _silence_stdout()
        return 141


def _flush_quietly() -> None:
    try:
        sys.stdout.flush()
    except (OSError, ValueError):
        _silence_stdout()


def _silence_stdout() -> None:
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)
    except (OSError, ValueError, AttributeError):
        pass


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
