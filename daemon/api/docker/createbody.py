"""Docker's `POST /containers/create` body as pallet's ContainerConfig.

Owns: reading Docker's `Config`, `HostConfig` and `NetworkingConfig` JSON (each field's
JSON type checked, a wrong one refused naming the field, as `Config.Env`), turning what
pallet supports into the ContainerConfig fields the pallet CLI fills from the same flags
(`-p` and `-v` strings, tmpfs specs, resources, security options), and refusing, naming
the field, a field pallet does not support that has a value other than its default.
Unknown fields are ignored, as dockerd ignores them. Must not: judge the values
themselves (a port, a path, a capability, a limit): the Create servicer's checks do, for
gRPC callers and this gateway alike.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

from pallet.v1 import containers_pb2 as pb
from pallet.v1.errors import InvalidArgument

#: The log drivers pallet's own log file stands in for (docker's default is json-file).
LOG_DRIVERS = ("", "json-file", "local")
_SIZE = re.compile(r"^(\d+(?:\.\d+)?)\s*([kmgtp]?)i?b?$", re.I)
_UNITS = {"": 1, "k": 1 << 10, "m": 1 << 20, "g": 1 << 30, "t": 1 << 40, "p": 1 << 50}


class Body:
    """One JSON object of the request, with its path for error messages ("HostConfig")."""

    def __init__(self, data: Any, path: str) -> None:
        if data is not None and not isinstance(data, dict):
            raise InvalidArgument(f"invalid {path}: expected an object, not {_kind(data)}")
        self.data: dict[str, Any] = data or {}
        self.path = path

    def name(self, key: str) -> str:
        return f"{self.path}.{key}" if self.path else key

    def _get(self, key: str, check: Callable[[Any], bool], expected: str) -> Any:
        value = self.data.get(key)
        if value is not None and not check(value):
            raise InvalidArgument(
                f"invalid {self.name(key)}: {_shown(value)}: expected {expected}"
            )
        return value

    def text(self, key: str) -> str:
        value: str | None = self._get(key, lambda v: isinstance(v, str), "a string")
        return value or ""

    def integer(self, key: str) -> int | None:
        value: int | None = self._get(key, _is_int, "an integer")
        return value

    def flag(self, key: str) -> bool:
        return bool(self._get(key, lambda v: isinstance(v, bool), "true or false"))

    def optional_flag(self, key: str) -> bool | None:
        value: bool | None = self._get(key, lambda v: isinstance(v, bool), "true or false")
        return value

    def strings(self, key: str) -> list[str] | None:
        """An array of strings (null: None)."""
        value: list[str] | None = self._get(
            key, lambda v: isinstance(v, list) and all(isinstance(i, str) for i in v),
            "an array of strings",
        )
        return value

    def command(self, key: str) -> list[str] | None:
        """Docker's StrSlice: an array of strings, or one string (one element)."""
        value: str | list[str] | None = self._get(
            key,
            lambda v: isinstance(v, str)
            or (isinstance(v, list) and all(isinstance(i, str) for i in v)),
            "an array of strings",
        )
        if isinstance(value, str):
            return [value]
        return value

    def string_map(self, key: str) -> dict[str, str]:
        value: dict[str, str] | None = self._get(
            key, lambda v: isinstance(v, dict) and all(isinstance(i, str) for i in v.values()),
            "an object of strings",
        )
        return dict(value or {})

    def object(self, key: str) -> Body:
        return Body(self.data.get(key), self.name(key))

    def objects(self, key: str) -> list[Body]:
        value = self._get(key, lambda v: isinstance(v, list), "an array of objects")
        return [Body(item, f"{self.name(key)}[{i}]") for i, item in enumerate(value or [])]

    def keys_of(self, key: str) -> list[str]:
        """The keys of an object of empty objects (ExposedPorts, Volumes)."""
        value = self._get(key, lambda v: isinstance(v, dict), "an object")
        return list(value or {})

    def unsupported(self, key: str, *defaults: Any, why: str = "") -> None:
        """A field pallet does not support: refused unless absent, empty (docker's
        default) or one of `defaults` (the values that mean what pallet does anyway)."""
        value = self.data.get(key)
        if value in (None, "", 0, False, [], {}) or value in defaults:
            return
        raise InvalidArgument(
            f"{self.name(key)} {_shown(value)} is not supported by pallet"
            + (f": {why}" if why else "")
        )


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _kind(value: Any) -> str:
    return {
        bool: "a boolean", int: "a number", float: "a number", str: "a string",
        list: "an array", dict: "an object",
    }.get(type(value), type(value).__name__)


def _shown(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


def ram_bytes(text: str, name: str) -> int:
    """docker's units.RAMInBytes ("10m", "1.5g", "512k", "100"): 1024-based."""
    match = _SIZE.match(text.strip())
    if not match:
        raise InvalidArgument(f"invalid {name} {text!r}: use bytes or a size such as 10m or 1g")
    return int(float(match.group(1)) * _UNITS[match.group(2).lower()])


def config_from_body(body: dict[str, Any], name: str) -> pb.ContainerConfig:
    """The ContainerConfig of a create request's body (Config fields at its top level,
    `HostConfig` and `NetworkingConfig` inside it) and its `name` query argument."""
    top = Body(body, "")
    host = top.object("HostConfig")
    config = pb.ContainerConfig(name=name)
    _config(top, config)
    _host(host, config)
    _networking(top.object("NetworkingConfig"), host, config)
    return config


def _config(top: Body, config: pb.ContainerConfig) -> None:
    config.image = top.text("Image")
    if not config.image:
        raise InvalidArgument("no image given: set Image to the image to create the container from")
    config.hostname = top.text("Hostname")
    top.unsupported("Domainname", why="the container's NIS domain name cannot be set")
    config.user = top.text("User")
    config.tty = top.flag("Tty")
    config.open_stdin = top.flag("OpenStdin")
    config.stdin_once = top.flag("StdinOnce")
    config.env[:] = top.strings("Env") or []
    config.cmd[:] = top.command("Cmd") or []
    entrypoint = top.command("Entrypoint")
    if entrypoint is not None:
        # docker's: [""] (the CLI's --entrypoint "") and [] clear the image's entrypoint.
        config.entrypoint[:] = [] if entrypoint == [""] else entrypoint
        config.entrypoint_set = True
    config.working_dir = top.text("WorkingDir")
    config.labels.update(top.string_map("Labels"))
    config.stop_signal = top.text("StopSignal")
    stop_timeout = top.integer("StopTimeout")
    if stop_timeout is not None:
        config.stop_timeout = stop_timeout
    config.mac_address = top.text("MacAddress")
    config.expose[:] = top.keys_of("ExposedPorts")
    # Config.Volumes: anonymous volumes, as the CLI's bare `-v /path`.
    config.binds.extend(top.keys_of("Volumes"))
    top.unsupported("NetworkDisabled", why="give HostConfig.NetworkMode \"none\" instead")
    top.unsupported("OnBuild")
    health = top.object("Healthcheck")
    if health.data:
        _healthcheck(health, config)


def _healthcheck(health: Body, config: pb.ContainerConfig) -> None:
    h = config.healthcheck
    h.SetInParent()
    h.test[:] = health.strings("Test") or []
    for key, attr in (("Interval", "interval_ns"), ("Timeout", "timeout_ns"),
                      ("StartPeriod", "start_period_ns"), ("StartInterval", "start_interval_ns")):
        value = health.integer(key)
        if value is not None:
            if value < 0:
                raise InvalidArgument(f"invalid {health.name(key)}: {value}: cannot be negative")
            setattr(h, attr, value)
    retries = health.integer("Retries")
    if retries is not None:
        if not 0 <= retries <= 2**31 - 1:
            raise InvalidArgument(f"invalid {health.name('Retries')}: {retries}: use 0 or more")
        h.retries = retries


def _host(host: Body, config: pb.ContainerConfig) -> None:
    config.binds.extend(host.strings("Binds") or [])
    _log_config(host.object("LogConfig"), config)
    config.network_mode = host.text("NetworkMode")
    if config.network_mode == "default":
        config.network_mode = ""
    config.publish.extend(_publish(host))
    policy = host.object("RestartPolicy")
    config.restart_policy.name = policy.text("Name")
    retries = policy.integer("MaximumRetryCount")
    if retries is not None:
        config.restart_policy.maximum_retry_count = retries
    config.auto_remove = host.flag("AutoRemove")
    driver = host.text("VolumeDriver")
    if driver not in ("", "local"):
        raise InvalidArgument(
            f"HostConfig.VolumeDriver {driver!r} is not supported by pallet: its volumes "
            "are local"
        )
    config.volumes_from[:] = host.strings("VolumesFrom") or []
    size = host._get("ConsoleSize", lambda v: isinstance(v, list) and len(v) == 2
                     and all(_is_int(i) and i >= 0 for i in v), "[height, width]")
    if size:
        config.console_height, config.console_width = size
    config.cap_add[:] = host.strings("CapAdd") or []
    config.cap_drop[:] = host.strings("CapDrop") or []
    config.dns[:] = host.strings("Dns") or []
    config.dns_options[:] = host.strings("DnsOptions") or []
    config.dns_search[:] = host.strings("DnsSearch") or []
    config.extra_hosts[:] = host.strings("ExtraHosts") or []
    config.group_add[:] = host.strings("GroupAdd") or []
    config.privileged = host.flag("Privileged")
    config.publish_all = host.flag("PublishAllPorts")
    config.read_only = host.flag("ReadonlyRootfs")
    config.security_opt[:] = host.strings("SecurityOpt") or []
    for path, options in host.string_map("Tmpfs").items():
        config.tmpfs.append(f"{path}:{options}" if options else path)
    config.userns_mode = host.text("UsernsMode")
    shm = host.integer("ShmSize")
    if shm is not None:
        config.shm_size = shm
    config.sysctls.update(host.string_map("Sysctls"))
    config.init = bool(host.optional_flag("Init"))
    for mount in host.objects("Mounts"):
        config.mounts.append(_mount(mount))
    for device in host.objects("Devices"):
        config.devices.append(pb.DeviceMapping(
            path_on_host=device.text("PathOnHost"),
            path_in_container=device.text("PathInContainer"),
            cgroup_permissions=device.text("CgroupPermissions"),
        ))
    for ulimit in host.objects("Ulimits"):
        config.ulimits.append(pb.Ulimit(
            name=ulimit.text("Name"), soft=ulimit.integer("Soft") or 0, hard=ulimit.integer("Hard") or 0,
        ))
    resources_into(host, config.resources)
    _unsupported_host(host)


def _unsupported_host(host: Body) -> None:
    """HostConfig fields pallet has no counterpart of: their defaults only."""
    # The values that mean what pallet does: its own IPC, PID and UTS namespaces, its own
    # runtime.
    host.unsupported("IpcMode", "private", "shareable",
                     why="containers get their own IPC namespace")
    host.unsupported("PidMode", why="containers get their own PID namespace")
    host.unsupported("UTSMode", why="containers get their own UTS namespace")
    host.unsupported("CgroupnsMode", "private")
    host.unsupported("Cgroup")
    host.unsupported("Runtime", "runc", "pallet-shim", why="pallet runs its own shim")
    host.unsupported("Isolation", "default")
    host.unsupported("Links", why="legacy links: put the containers on a user network, "
                     "where they resolve each other by name")
    host.unsupported("OomScoreAdj")
    host.unsupported("StorageOpt")
    host.unsupported("Annotations")
    host.unsupported("MaskedPaths")
    host.unsupported("ReadonlyPaths")
    # ContainerIDFile is the CLI's to write (--cidfile): dockerd ignores it too.


def _log_config(log: Body, config: pb.ContainerConfig) -> None:
    driver = log.text("Type")
    if driver not in LOG_DRIVERS:
        raise InvalidArgument(
            f"HostConfig.LogConfig.Type {driver!r} is not supported by pallet: its containers "
            "log to a file the daemon keeps (json-file, local)"
        )
    for key, value in log.string_map("Config").items():
        if key == "max-size":
            config.log_max_size = ram_bytes(value, "HostConfig.LogConfig.Config.max-size")
        elif key == "max-file":
            if not value.isdigit() or not 1 <= int(value) <= 2**31 - 1:
                raise InvalidArgument(
                    f"invalid HostConfig.LogConfig.Config.max-file {value!r}: use 1 or more"
                )
            config.log_max_file = int(value)
        elif key not in ("compress", "mode", "max-buffer-size"):
            raise InvalidArgument(
                f"HostConfig.LogConfig.Config {key!r} is not supported by pallet: it knows "
                "max-size and max-file"
            )


def _publish(host: Body) -> list[str]:
    """HostConfig.PortBindings ({"80/tcp": [{"HostIp": "", "HostPort": "8080"}]}) as the
    `-p` strings the Create servicer parses."""
    raw = host.data.get("PortBindings")
    if raw is None:
        return []
    if not isinstance(raw, dict):
        raise InvalidArgument(f"invalid HostConfig.PortBindings: {_shown(raw)}: expected an object")
    out: list[str] = []
    for port, bindings in raw.items():
        where = f"HostConfig.PortBindings[{port!r}]"
        if bindings is None:
            bindings = [{}]
        if not isinstance(bindings, list):
            raise InvalidArgument(f"invalid {where}: expected an array of bindings")
        for i, item in enumerate(bindings or [{}]):
            binding = Body(item, f"{where}[{i}]")
            ip, host_port = binding.text("HostIp"), binding.text("HostPort")
            if ip:
                out.append(f"{ip}:{host_port}:{port}")
            elif host_port:
                out.append(f"{host_port}:{port}")
            else:
                out.append(port)
    return out


def _mount(m: Body) -> pb.Mount:
    kind = m.text("Type")
    mount = pb.Mount(type=kind, source=m.text("Source"), target=m.text("Target"),
                     read_only=m.flag("ReadOnly"))
    m.unsupported("Consistency", "default", "consistent")
    bind = m.object("BindOptions")
    volume = m.object("VolumeOptions")
    tmpfs = m.object("TmpfsOptions")
    if bind.data:
        mount.propagation = bind.text("Propagation")
        bind.unsupported("NonRecursive")
        bind.unsupported("ReadOnlyNonRecursive")
        bind.unsupported("ReadOnlyForceRecursive")
        bind.unsupported("CreateMountpoint")
    if volume.data:
        mount.no_copy = volume.flag("NoCopy")
        volume.unsupported("Labels")
        volume.unsupported("Subpath")
        driver = volume.object("DriverConfig")
        if driver.text("Name") not in ("", "local"):
            raise InvalidArgument(
                f"{driver.name('Name')} {driver.text('Name')!r} is not supported by pallet: its "
                "volumes are local"
            )
        driver.unsupported("Options")
    if tmpfs.data:
        size = tmpfs.integer("SizeBytes")
        if size:
            mount.tmpfs_options.append(f"size={size}")
        mode = tmpfs.integer("Mode")
        if mode:
            mount.tmpfs_options.append(f"mode={mode:o}")
        options = tmpfs._get("Options", lambda v: isinstance(v, list), "an array of options")
        for option in options or []:
            # docker's [["noexec"], ["uid", "1000"]]: flags and key-value pairs.
            if not (isinstance(option, list) and 1 <= len(option) <= 2
                    and all(isinstance(o, str) for o in option)):
                raise InvalidArgument(
                    f"invalid {tmpfs.name('Options')}: {_shown(option)}: expected [\"flag\"] "
                    "or [\"key\", \"value\"]"
                )
            mount.tmpfs_options.append("=".join(option))
    return mount


# (Docker's field, the Resources field) of the plain integer limits.
_LIMITS = (
    ("Memory", "memory"), ("MemorySwap", "memory_swap"),
    ("MemoryReservation", "memory_reservation"), ("KernelMemory", "kernel_memory"),
    ("NanoCpus", "nano_cpus"), ("CpuShares", "cpu_shares"), ("CpuPeriod", "cpu_period"),
    ("CpuQuota", "cpu_quota"), ("PidsLimit", "pids_limit"), ("BlkioWeight", "blkio_weight"),
)
_THROTTLES = (
    ("BlkioDeviceReadBps", "blkio_device_read_bps"),
    ("BlkioDeviceWriteBps", "blkio_device_write_bps"),
    ("BlkioDeviceReadIOps", "blkio_device_read_iops"),
    ("BlkioDeviceWriteIOps", "blkio_device_write_iops"),
)


def resources_into(host: Body, r: pb.Resources) -> None:
    """Docker's resource fields (HostConfig's, or an update's body) into `r`. A zero (an
    empty string, a false) is docker's "not given": no limit at create, unchanged in an
    update (the docker CLI sends every field, the ones not asked for as zeros)."""
    for key, attr in _LIMITS:
        value = host.integer(key)
        if not value:
            continue
        if attr == "blkio_weight" and value < 0:
            raise InvalidArgument(f"invalid {host.name(key)}: {value}: use 10 to 1000")
        setattr(r, attr, value)
    for key, attr in (("CpusetCpus", "cpuset_cpus"), ("CpusetMems", "cpuset_mems")):
        text = host.text(key)
        if text:
            setattr(r, attr, text)
    if host.optional_flag("OomKillDisable"):
        r.oom_kill_disable = True
    for key, attr in _THROTTLES:
        for device in host.objects(key):
            rate = device.integer("Rate") or 0
            if rate < 0:
                raise InvalidArgument(f"invalid {device.name('Rate')}: {rate}: cannot be negative")
            getattr(r, attr).append(pb.ThrottleDevice(path=device.text("Path"), rate=rate))
    swappiness = host.integer("MemorySwappiness")
    if swappiness is not None and swappiness != -1:
        raise InvalidArgument(
            f"{host.name('MemorySwappiness')} {swappiness} is not supported by pallet"
        )
    for key in ("CgroupParent", "BlkioWeightDevice", "CpuRealtimePeriod",
                "CpuRealtimeRuntime", "DeviceCgroupRules", "DeviceRequests",
                "KernelMemoryTCP", "CpuCount", "CpuPercent", "IOMaximumIOps",
                "IOMaximumBandwidth"):
        host.unsupported(key)


def _networking(net: Body, host: Body, config: pb.ContainerConfig) -> None:
    """NetworkingConfig.EndpointsConfig: the aliases, static address and MAC address on
    the network the container is created on (HostConfig.NetworkMode's), and the other
    networks it names (API 1.44+: Compose sends every network of a service so)."""
    endpoints = net.data.get("EndpointsConfig")
    if endpoints is None:
        return
    if not isinstance(endpoints, dict):
        raise InvalidArgument(
            f"invalid NetworkingConfig.EndpointsConfig: {_shown(endpoints)}: expected an object"
        )
    mode = config.network_mode or "bridge"
    # "default" is the CLI's name for the default network when no --network is given.
    names = list(endpoints)
    if config.network_mode:
        first = next((n for n in names if n in (mode, "default")), None)
    else:
        # No NetworkMode: the first network named is the one it is created on.
        first = names[0] if names else None
        if first not in (None, "default", "bridge"):
            config.network_mode = first
    for name in names:
        endpoint = Body(endpoints[name], f"NetworkingConfig.EndpointsConfig[{name!r}]")
        aliases = endpoint.strings("Aliases") or []
        ipam = endpoint.object("IPAMConfig")
        ipv4 = ipam.text("IPv4Address")
        ipam.unsupported("IPv6Address", why="pallet's networks are IPv4")
        ipam.unsupported("LinkLocalIPs")
        mac = endpoint.text("MacAddress")
        endpoint.unsupported("Links")
        endpoint.unsupported("DriverOpts")
        if name == first:
            config.network_aliases.extend(aliases)
            config.ipv4_address = ipv4
            if mac:
                config.mac_address = mac
            continue
        if mac:
            raise InvalidArgument(
                f"{endpoint.name('MacAddress')}: pallet sets the MAC address of the first "
                "network's interface only"
            )
        config.more_networks.append(
            pb.EndpointRequest(network=name, aliases=aliases, ipv4_address=ipv4)
        )
