"""Docker's JSON of a container: inspect's document and the list's summary.

Owns: `GET /containers/{id}/json` (what `docker inspect` and `pallet inspect` print) and
`GET /containers/json`'s summaries, in docker's field order; docker's state names and
status texts ("Up 5 seconds", "Exited (0) 3 seconds ago"); Config.Healthcheck and
State.Health; HostConfig. Messages (pallet.v1 Container) are read by attribute only.
Mounts and networking are `mounts`' and `netsettings`'.
"""

from __future__ import annotations

from typing import Any

from pallet.v1.docker import mounts as docker_mounts
from pallet.v1.docker import netsettings
from pallet.v1.docker.times import human_duration, is_unset, seconds_since, timestamp_text

#: ContainerStatus enum numbers (containers.proto) to docker's lowercase state names.
STATUS_NAMES: dict[int, str] = {
    1: "created",
    2: "running",
    3: "paused",
    4: "restarting",
    5: "removing",
    6: "exited",
    7: "dead",
}


def status_name(status: int) -> str:
    return STATUS_NAMES.get(int(status), "unknown")


def health_text(status: str) -> str:
    """docker's Health.String: "health: starting", "healthy", "unhealthy"."""
    return "health: starting" if status == "starting" else status


def status_text(c: Any, now: float) -> str:
    """docker's Status of a container: "Up 5 seconds", "Exited (0) 3 seconds ago"..."""
    state = c.state
    name = status_name(state.status)
    if name == "created":
        return "Created"
    if name in ("running", "paused"):
        up = "Up " + human_duration(seconds_since(state.started_at, now))
        if name == "paused":
            return up + " (Paused)"
        if state.HasField("health") and state.health.status:
            return f"{up} ({health_text(state.health.status)})"
        return up
    if name == "restarting":
        return f"Restarting ({state.exit_code}) {human_duration(seconds_since(state.finished_at, now))} ago"
    if name == "removing":
        return "Removal In Progress"
    if name == "dead":
        return "Dead"
    if name == "exited":
        if is_unset(state.finished_at):
            return f"Exited ({state.exit_code})"
        return f"Exited ({state.exit_code}) {human_duration(seconds_since(state.finished_at, now))} ago"
    return name.capitalize()


def health_config(h: Any) -> dict[str, Any]:
    """docker's Healthcheck object (Config.Healthcheck): Test, and the values that are set."""
    out: dict[str, Any] = {"Test": list(h.test)}
    for key, value in (("Interval", h.interval_ns), ("Timeout", h.timeout_ns),
                       ("StartPeriod", h.start_period_ns),
                       ("StartInterval", h.start_interval_ns), ("Retries", h.retries)):
        if value:
            out[key] = int(value)
    return out


def health_state(h: Any) -> dict[str, Any]:
    """docker's State.Health."""
    return {
        "Status": h.status,
        "FailingStreak": int(h.failing_streak),
        "Log": [
            {"Start": timestamp_text(r.start), "End": timestamp_text(r.end),
             "ExitCode": int(r.exit_code), "Output": r.output}
            for r in h.log
        ],
    }


def list_or_none(values: Any) -> list[str] | None:
    items = list(values)
    return items or None


def command(c: Any) -> str:
    """The container's command as one string, as dockerd writes the summary's `Command`:
    its arguments that hold a space in single quotes."""
    args = [f"'{a}'" if " " in a else a for a in c.args]
    return " ".join([c.path, *args]) if args else c.path


def _state(c: Any) -> dict[str, Any]:
    state = c.state
    status = status_name(state.status)
    return {
        "Status": status,
        "Running": status in ("running", "paused", "restarting"),  # docker's
        "Paused": status == "paused",
        "Restarting": status == "restarting",
        "OOMKilled": bool(state.oom_killed),
        "Dead": status == "dead",
        "Pid": int(state.pid),
        "ExitCode": int(state.exit_code),
        "Error": state.error,
        "StartedAt": timestamp_text(state.started_at),
        "FinishedAt": timestamp_text(state.finished_at),
        **({"Health": health_state(state.health)} if state.HasField("health") else {}),
    }


def _config(c: Any) -> dict[str, Any]:
    cfg = c.config
    return {
        "Hostname": cfg.hostname,
        "Domainname": "",
        "User": cfg.user,
        "AttachStdin": False,
        "AttachStdout": False,
        "AttachStderr": False,
        "ExposedPorts": netsettings.exposed_ports(c),
        "Tty": bool(cfg.tty),
        "OpenStdin": bool(cfg.open_stdin),
        "StdinOnce": bool(cfg.stdin_once),
        "Env": list(cfg.env),
        "Cmd": list_or_none(cfg.cmd),
        **({"Healthcheck": health_config(cfg.healthcheck)} if cfg.HasField("healthcheck") else {}),
        "Image": c.image or cfg.image,  # the reference as given, like docker
        "Volumes": docker_mounts.config_volumes(c),
        "WorkingDir": cfg.working_dir,
        "Entrypoint": list_or_none(cfg.entrypoint),
        "OnBuild": None,
        "MacAddress": cfg.mac_address,
        "Labels": dict(sorted(cfg.labels.items())),
        "StopSignal": cfg.stop_signal,
        "StopTimeout": int(cfg.stop_timeout) if cfg.HasField("stop_timeout") else None,
    }


def inspect_container(c: Any) -> dict[str, Any]:
    """A container as docker's `inspect` JSON (the fields pallet has, in docker's order);
    SizeRw and SizeRootFs when the daemon was asked for them."""
    sizes: dict[str, int] = {}
    if c.HasField("size_rw"):
        sizes = {"SizeRw": int(c.size_rw), "SizeRootFs": int(c.size_root_fs)}
    return {
        "Id": c.id,
        "Created": timestamp_text(c.created),
        "Path": c.path,
        "Args": list(c.args),
        "State": _state(c),
        "Image": c.image_id,
        "LogPath": c.log_path,
        "Name": "/" + c.name,
        "RestartCount": int(c.restart_count),
        "Driver": "overlay",
        "Platform": "linux",
        "HostConfig": host_config(c),
        "GraphDriver": {
            "Data": {"LowerDir": ":".join(c.lower_dirs), "UpperDir": c.upper_dir},
            "Name": "overlay",
        },
        **sizes,
        "Mounts": docker_mounts.mounts(c),
        "Config": _config(c),
        "NetworkSettings": netsettings.network_settings(c),
    }


def container_summary(c: Any, now: float) -> dict[str, Any]:
    """One container of `GET /containers/json` (docker's ContainerSummary)."""
    cfg = c.config
    summary: dict[str, Any] = {
        "Id": c.id,
        "Names": ["/" + c.name],
        "Image": c.image or c.image_id,
        "ImageID": c.image_id,
        "Command": command(c),
        "Created": int(c.created.seconds),
        "Ports": netsettings.summary_ports(c),
    }
    if c.HasField("size_rw"):
        summary["SizeRw"] = int(c.size_rw)
        summary["SizeRootFs"] = int(c.size_root_fs)
    summary.update({
        "Labels": dict(sorted(cfg.labels.items())),
        "State": status_name(c.state.status),
        "Status": status_text(c, now),
        "HostConfig": {"NetworkMode": cfg.network_mode or "default"},
        "NetworkSettings": {"Networks": netsettings.networks(c)},
        "Mounts": docker_mounts.mounts(c),
    })
    return summary


def host_config_security(cfg: Any) -> dict[str, Any]:
    """docker's HostConfig security fields (null where docker shows null when empty)."""
    return {
        "CapAdd": list(cfg.cap_add) or None,
        "CapDrop": list(cfg.cap_drop) or None,
        "GroupAdd": list(cfg.group_add) or None,
        "Privileged": bool(cfg.privileged),
        "ReadonlyRootfs": bool(cfg.read_only),
        "SecurityOpt": list(cfg.security_opt) or None,
        "UsernsMode": cfg.userns_mode,
        "ShmSize": int(cfg.shm_size),
        "Sysctls": dict(sorted(cfg.sysctls.items())),
        "Devices": [
            {"PathOnHost": d.path_on_host, "PathInContainer": d.path_in_container,
             "CgroupPermissions": d.cgroup_permissions}
            for d in cfg.devices
        ],
        "Ulimits": [{"Name": u.name, "Hard": int(u.hard), "Soft": int(u.soft)} for u in cfg.ulimits] or None,
    }


def log_config(cfg: Any) -> dict[str, Any]:
    """Docker's HostConfig.LogConfig: the driver and the rotation options that were given."""
    options: dict[str, str] = {}
    if cfg.log_max_size:
        options["max-size"] = str(int(cfg.log_max_size))
        options["max-file"] = str(max(1, int(cfg.log_max_file)))
    return {"Type": "local", "Config": options}


def host_config(c: Any) -> dict[str, Any]:
    """docker's HostConfig, in its field order."""
    cfg = c.config
    network = netsettings.host_config_network(c)
    mounts = docker_mounts.host_config_mounts(cfg)
    security = host_config_security(cfg)
    return {
        "Binds": mounts["Binds"],
        "ContainerIDFile": "",
        "LogConfig": log_config(cfg),
        "NetworkMode": network["NetworkMode"],
        "PortBindings": network["PortBindings"],
        "RestartPolicy": {
            "Name": cfg.restart_policy.name or "no",
            "MaximumRetryCount": int(cfg.restart_policy.maximum_retry_count),
        },
        "AutoRemove": bool(cfg.auto_remove),
        "VolumeDriver": "",
        "VolumesFrom": mounts["VolumesFrom"],
        "ConsoleSize": [int(cfg.console_height), int(cfg.console_width)],
        "CapAdd": security["CapAdd"],
        "CapDrop": security["CapDrop"],
        "CgroupnsMode": "",
        **{k: network[k] for k in ("Dns", "DnsOptions", "DnsSearch", "ExtraHosts")},
        "GroupAdd": security["GroupAdd"],
        "IpcMode": "private",
        "Cgroup": "",
        "Links": None,
        "OomScoreAdj": 0,
        "PidMode": "",
        "Privileged": security["Privileged"],
        "PublishAllPorts": network["PublishAllPorts"],
        "ReadonlyRootfs": security["ReadonlyRootfs"],
        "SecurityOpt": security["SecurityOpt"],
        "Tmpfs": mounts["Tmpfs"],
        "UTSMode": "",
        "UsernsMode": security["UsernsMode"],
        "ShmSize": security["ShmSize"],
        **({"Sysctls": security["Sysctls"]} if security["Sysctls"] else {}),
        "Runtime": "pallet-shim",
        "Isolation": "",
        **resources(cfg.resources),  # docker's Resources come before Mounts
        "Devices": security["Devices"],
        "Ulimits": security["Ulimits"],
        "Mounts": mounts["Mounts"],
        # docker's *bool with omitempty: shown when --init was given.
        **({"Init": True} if cfg.init else {}),
    }


def resources(r: Any) -> dict[str, Any]:
    """docker's resource fields of HostConfig (0 where no limit is set, as docker)."""

    def devices(items: Any) -> list[dict[str, Any]] | None:
        return [{"Path": d.path, "Rate": int(d.rate)} for d in items] or None

    return {
        "CpuShares": int(r.cpu_shares),
        "Memory": int(r.memory),
        "NanoCpus": int(r.nano_cpus),
        "CgroupParent": "",
        "BlkioWeight": int(r.blkio_weight),
        "BlkioWeightDevice": None,
        "BlkioDeviceReadBps": devices(r.blkio_device_read_bps),
        "BlkioDeviceWriteBps": devices(r.blkio_device_write_bps),
        "BlkioDeviceReadIOps": devices(r.blkio_device_read_iops),
        "BlkioDeviceWriteIOps": devices(r.blkio_device_write_iops),
        "CpuPeriod": int(r.cpu_period),
        "CpuQuota": int(r.cpu_quota),
        "CpuRealtimePeriod": 0,
        "CpuRealtimeRuntime": 0,
        "CpusetCpus": r.cpuset_cpus,
        "CpusetMems": r.cpuset_mems,
        "DeviceCgroupRules": None,
        "DeviceRequests": None,
        "MemoryReservation": int(r.memory_reservation),
        "MemorySwap": int(r.memory_swap),
        "MemorySwappiness": None,
        "OomKillDisable": bool(r.oom_kill_disable),
        "PidsLimit": int(r.pids_limit) or None,
    }
