"""Docker-shaped views of pallet objects: `inspect` documents, list rows, event lines.

Owns: turning pallet.v1 Container, Image and Event messages (read by attribute only) into
what a docker user expects: `inspect` JSON in docker's field order, `ps`/`images` rows with
their template fields (`.ID`, `.Names`, `.Label "k"`...) and default tables, docker's status
strings ("Up 5 seconds", "Exited (0) 3 seconds ago"), and `events` lines.
Must not: talk to the daemon or print; generic pieces (times, sizes, tables) are `format`'s.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from pallet.client.format import (
    ellipsis,
    go_time_text,
    human_duration,
    human_size,
    is_unset,
    seconds_since,
    short_id,
    split_reference,
    table,
    timestamp_text,
)
from pallet.client import views_mounts

from pallet.client.template import go_quote
from pallet.v1.docker import images as docker_images
from pallet.client.views_networks import (
    exposed_ports,
    host_config_network,
    network_settings,
    ps_networks,
    ps_ports,
)

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

# ---------------------------------------------------------------------------------------------
# Containers
# ---------------------------------------------------------------------------------------------


def status_name(status: int) -> str:
    return STATUS_NAMES.get(int(status), "unknown")


def container_status(c: Any, now: float) -> str:
    """The STATUS column: "Up 5 seconds", "Exited (0) 3 seconds ago", "Created"..."""
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


def health_text(status: str) -> str:
    """docker's Health.String: "health: starting", "healthy", "unhealthy"."""
    return "health: starting" if status == "starting" else status


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


def container_command(c: Any, trunc: bool) -> str:
    """The COMMAND column: path and args, cut to 20 characters, Go-quoted."""
    command = " ".join([c.path, *c.args]) if c.path else " ".join(c.args)
    if trunc:
        command = ellipsis(command, 20)
    return go_quote(command)


def labels_text(labels: Mapping[str, str]) -> str:
    return ",".join(f"{k}={v}" for k, v in sorted(labels.items()))


def container_fields(c: Any, now: float, trunc: bool) -> dict[str, Any]:
    """Docker's ps template fields for one container (`.ID`, `.Names`, `.Label "k"`...)."""
    labels = dict(c.config.labels)
    image = c.image or c.image_id
    if trunc and image.startswith("sha256:"):
        image = short_id(image)
    return {
        "ID": short_id(c.id) if trunc else c.id,
        "Image": image,
        "Command": container_command(c, trunc),
        "CreatedAt": go_time_text(c.created),
        "RunningFor": human_duration(seconds_since(c.created, now)) + " ago",
        "Ports": ps_ports(c),
        "State": status_name(c.state.status),
        "Status": container_status(c, now),
        "Size": "",
        "Names": c.name,
        "Labels": labels_text(labels),
        "Label": lambda key: labels.get(key, ""),
        "Mounts": views_mounts.ps_mounts(c, trunc),
        "Networks": ps_networks(c),
        "LocalVolumes": views_mounts.local_volumes(c),
    }


#: Header cells for `--format "table ..."`, like docker's.
CONTAINER_HEADERS: dict[str, Any] = {
    "ID": "CONTAINER ID",
    "Image": "IMAGE",
    "Command": "COMMAND",
    "CreatedAt": "CREATED AT",
    "RunningFor": "CREATED",
    "Ports": "PORTS",
    "State": "STATE",
    "Status": "STATUS",
    "Size": "SIZE",
    "Names": "NAMES",
    "Labels": "LABELS",
    "Label": lambda key: "LABEL",
    "Mounts": "MOUNTS",
    "Networks": "NETWORKS",
    "LocalVolumes": "LOCAL VOLUMES",
}

def ps_table(containers: Iterable[Any], now: float, trunc: bool = True) -> str:
    """The default `ps` table."""
    rows = [["CONTAINER ID", "IMAGE", "COMMAND", "CREATED", "STATUS", "PORTS", "NAMES"]]
    for c in containers:
        f = container_fields(c, now, trunc)
        rows.append([f["ID"], f["Image"], f["Command"], f["RunningFor"], f["Status"], f["Ports"], f["Names"]])
    return table(rows)


def _list_or_none(values: Iterable[str]) -> list[str] | None:
    items = list(values)
    return items or None


def _log_config(cfg: Any) -> dict[str, Any]:
    """Docker's HostConfig.LogConfig: the driver and the rotation options that were given."""
    options: dict[str, str] = {}
    if cfg.log_max_size:
        options["max-size"] = str(int(cfg.log_max_size))
        options["max-file"] = str(max(1, int(cfg.log_max_file)))
    return {"Type": "local", "Config": options}


def inspect_container(c: Any) -> dict[str, Any]:
    """A container as docker's `inspect` JSON (the fields pallet has, in docker's order)."""
    state = c.state
    cfg = c.config
    status = status_name(state.status)
    return {
        "Id": c.id,
        "Created": timestamp_text(c.created),
        "Path": c.path,
        "Args": list(c.args),
        "State": {
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
        },
        "Image": c.image_id,
        "LogPath": c.log_path,
        "Name": "/" + c.name,
        "RestartCount": int(c.restart_count),
        "Driver": "overlay",
        "Platform": "linux",
        "HostConfig": _host_config(c),
        "GraphDriver": {
            "Data": {"LowerDir": ":".join(c.lower_dirs), "UpperDir": c.upper_dir},
            "Name": "overlay",
        },
        "Mounts": views_mounts.mounts(c),
        "Config": {
            "Hostname": cfg.hostname,
            "User": cfg.user,
            "ExposedPorts": exposed_ports(c),
            "OpenStdin": bool(cfg.open_stdin),
            "StdinOnce": bool(cfg.stdin_once),
            "Tty": bool(cfg.tty),
            "Env": list(cfg.env),
            "Cmd": _list_or_none(cfg.cmd),
            **({"Healthcheck": health_config(cfg.healthcheck)} if cfg.HasField("healthcheck") else {}),
            "Image": c.image or cfg.image,  # the reference as given, like docker
            "Volumes": views_mounts.config_volumes(c),
            "WorkingDir": cfg.working_dir,
            "Entrypoint": _list_or_none(cfg.entrypoint),
            "MacAddress": cfg.mac_address,
            "Labels": dict(sorted(cfg.labels.items())),
            "StopSignal": cfg.stop_signal,
            "StopTimeout": int(cfg.stop_timeout) if cfg.HasField("stop_timeout") else None,
        },
        "NetworkSettings": network_settings(c),
    }


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


def _host_config(c: Any) -> dict[str, Any]:
    """docker's HostConfig, in its field order."""
    cfg = c.config
    network = host_config_network(c)
    mounts = views_mounts.host_config_mounts(cfg)
    security = host_config_security(cfg)
    return {
        "Binds": mounts["Binds"],
        "LogConfig": _log_config(cfg),
        "NetworkMode": network["NetworkMode"],
        "PortBindings": network["PortBindings"],
        "RestartPolicy": {
            "Name": cfg.restart_policy.name or "no",
            "MaximumRetryCount": int(cfg.restart_policy.maximum_retry_count),
        },
        "AutoRemove": bool(cfg.auto_remove),
        "VolumesFrom": mounts["VolumesFrom"],
        "CapAdd": security["CapAdd"],
        "CapDrop": security["CapDrop"],
        **{k: network[k] for k in ("Dns", "DnsOptions", "DnsSearch", "ExtraHosts")},
        "GroupAdd": security["GroupAdd"],
        "Privileged": security["Privileged"],
        "PublishAllPorts": network["PublishAllPorts"],
        "ReadonlyRootfs": security["ReadonlyRootfs"],
        "SecurityOpt": security["SecurityOpt"],
        "Tmpfs": mounts["Tmpfs"],
        "UsernsMode": security["UsernsMode"],
        "ShmSize": security["ShmSize"],
        **({"Sysctls": security["Sysctls"]} if security["Sysctls"] else {}),
        "Devices": security["Devices"],
        "Ulimits": security["Ulimits"],
        **_resources(cfg.resources),  # docker's Resources come before Mounts
        "Mounts": mounts["Mounts"],
        # docker's *bool with omitempty: shown when --init was given.
        **({"Init": True} if cfg.init else {}),
    }


def _resources(r: Any) -> dict[str, Any]:
    """docker's resource fields of HostConfig (0 where no limit is set, as docker)."""

    def devices(items: Any) -> list[dict[str, Any]] | None:
        return [{"Path": d.path, "Rate": int(d.rate)} for d in items] or None

    return {
        "Memory": int(r.memory),
        "MemorySwap": int(r.memory_swap),
        "MemoryReservation": int(r.memory_reservation),
        "NanoCpus": int(r.nano_cpus),
        "CpuShares": int(r.cpu_shares),
        "CpuPeriod": int(r.cpu_period),
        "CpuQuota": int(r.cpu_quota),
        "CpusetCpus": r.cpuset_cpus,
        "CpusetMems": r.cpuset_mems,
        "PidsLimit": int(r.pids_limit) or None,
        "BlkioWeight": int(r.blkio_weight),
        "BlkioDeviceReadBps": devices(r.blkio_device_read_bps),
        "BlkioDeviceWriteBps": devices(r.blkio_device_write_bps),
        "BlkioDeviceReadIOps": devices(r.blkio_device_read_iops),
        "BlkioDeviceWriteIOps": devices(r.blkio_device_write_iops),
        "OomKillDisable": bool(r.oom_kill_disable),
    }


# ---------------------------------------------------------------------------------------------
# Images
# ---------------------------------------------------------------------------------------------


def inspect_image(image: Any) -> dict[str, Any]:
    """An image as docker's `image inspect` JSON (the Docker API gateway's shape)."""
    return docker_images.inspect_image(image)


def image_fields(image: Any, reference: str | None, now: float, trunc: bool) -> dict[str, Any]:
    """Docker's `images` template fields for one (image, reference) row."""
    if reference is None:
        repo, tag = "<none>", "<none>"
    else:
        repo, tag = split_reference(reference)
    digest = "<none>"
    for rd in image.repo_digests:
        if rd.split("@", 1)[0] == repo or reference is None:
            digest = rd.split("@", 1)[1]
            break
    return {
        "ID": short_id(image.id) if trunc else image.id,
        "Repository": repo,
        "Tag": tag,
        "Digest": digest,
        "CreatedSince": human_duration(seconds_since(image.created, now)) + " ago",
        "CreatedAt": go_time_text(image.created),
        "Size": human_size(image.size),
        "Containers": "N/A",
    }


IMAGE_HEADERS: dict[str, Any] = {
    "ID": "IMAGE ID",
    "Repository": "REPOSITORY",
    "Tag": "TAG",
    "Digest": "DIGEST",
    "CreatedSince": "CREATED",
    "CreatedAt": "CREATED AT",
    "Size": "SIZE",
    "Containers": "CONTAINERS",
}

def image_rows(images: Iterable[Any], now: float, trunc: bool = True) -> list[dict[str, Any]]:
    """One row per reference of each image; an untagged image is one `<none>` row."""
    rows: list[dict[str, Any]] = []
    for image in images:
        refs: list[str | None] = list(image.repo_tags)
        if not refs:
            refs = [rd for rd in image.repo_digests] or [None]
        for ref in refs:
            rows.append(image_fields(image, ref, now, trunc))
    return rows


def images_table(images: Iterable[Any], now: float, trunc: bool = True) -> str:
    """The default `images` table."""
    rows = [["REPOSITORY", "TAG", "IMAGE ID", "CREATED", "SIZE"]]
    for f in image_rows(images, now, trunc):
        rows.append([f["Repository"], f["Tag"], f["ID"], f["CreatedSince"], f["Size"]])
    return table(rows)


# ---------------------------------------------------------------------------------------------
# Events
# ---------------------------------------------------------------------------------------------


def event_line(event: Any, with_seq: bool = False) -> str:
    """`2026-11-27T18:31:16.123456789Z container create <id> (image=busybox, name=web)`."""
    text = f"{timestamp_text(event.time)} {event.type} {event.action} {event.actor_id}"
    attrs = sorted(event.attributes.items())
    if attrs:
        text += " (" + ", ".join(f"{k}={v}" for k, v in attrs) + ")"
    if with_seq:
        text = f"[{event.seq}] {text}"
    return text


