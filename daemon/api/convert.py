"""Conversions between protobuf messages and domain dataclasses, at the API edge only.

Owns: every pb2 <-> dataclass mapping palletd's servicers need. Must not: decide anything.
"""

from __future__ import annotations

from collections.abc import Callable

from google.protobuf.timestamp_pb2 import Timestamp

from pallet.daemon.containers.networking import NetworkView, PortView
from pallet.daemon.containers.model import (
    MOUNT_BIND,
    Health,
    MOUNT_VOLUME,
    ConfigRequest,
    Container,
    CreateRequest,
    DeviceMapping,
    EndpointRequest,
    HostConfig,
    LogConfig,
    MountSpec,
    Security,
    RestartPolicy,
    Status,
    Ulimit,
    Resources,
    Status,
    ThrottleDevice,
)
from pallet.daemon.events.model import Event
from pallet.daemon.images.model import HealthConfig, Image
from pallet.v1 import containers_pb2 as cpb
from pallet.v1 import events_pb2 as epb
from pallet.v1 import images_pb2 as ipb

STATUS = {
    Status.CREATED: cpb.CONTAINER_STATUS_CREATED,
    Status.RUNNING: cpb.CONTAINER_STATUS_RUNNING,
    Status.PAUSED: cpb.CONTAINER_STATUS_PAUSED,
    Status.RESTARTING: cpb.CONTAINER_STATUS_RESTARTING,
    Status.REMOVING: cpb.CONTAINER_STATUS_REMOVING,
    Status.EXITED: cpb.CONTAINER_STATUS_EXITED,
    Status.DEAD: cpb.CONTAINER_STATUS_DEAD,
}


def timestamp(ns: int) -> Timestamp | None:
    if not ns:
        return None
    ts = Timestamp()
    ts.FromNanoseconds(ns)
    return ts


def nanos(ts: Timestamp, present: bool) -> int:
    return ts.ToNanoseconds() if present else 0


def optional_nanos(ts: Timestamp, present: bool) -> int | None:
    """A time that may be absent: None when not set (a set 0 is Unix time 0, not "none")."""
    return ts.ToNanoseconds() if present else None


def create_request(cfg: cpb.ContainerConfig) -> CreateRequest:
    # proto3 cannot tell an unset repeated field from an empty one: an empty cmd is "the
    # image's", and entrypoint_set says whether an (even empty) entrypoint was given.
    return CreateRequest(
        name=cfg.name,
        config=ConfigRequest(
            image=cfg.image,
            cmd=tuple(cfg.cmd) or None,
            entrypoint=tuple(cfg.entrypoint) if cfg.entrypoint_set else None,
            env=tuple(cfg.env),
            working_dir=cfg.working_dir,
            user=cfg.user,
            hostname=cfg.hostname,
            labels=dict(cfg.labels),
            open_stdin=cfg.open_stdin,
            stdin_once=cfg.stdin_once,
            stop_signal=cfg.stop_signal,
            stop_timeout=cfg.stop_timeout if cfg.HasField("stop_timeout") else None,
            expose=tuple(cfg.expose),
            mac_address=cfg.mac_address,
            tty=cfg.tty,
            console_size=(cfg.console_height, cfg.console_width),
            healthcheck=health_config(cfg.healthcheck) if cfg.HasField("healthcheck") else None,
        ),
        host_config=HostConfig(
            auto_remove=cfg.auto_remove,
            log_config=LogConfig(max_size=cfg.log_max_size, max_files=cfg.log_max_file),
            network_mode=cfg.network_mode or "bridge",
            publish=tuple(cfg.publish),
            publish_all=cfg.publish_all,
            dns=tuple(cfg.dns),
            dns_search=tuple(cfg.dns_search),
            dns_options=tuple(cfg.dns_options),
            extra_hosts=tuple(cfg.extra_hosts),
            binds=tuple(cfg.binds),
            mount_requests=tuple(mount_request(m) for m in cfg.mounts),
            tmpfs=tuple(cfg.tmpfs),
            volumes_from=tuple(cfg.volumes_from),
            security=security(cfg),
            restart_policy=restart_policy(cfg.restart_policy),
            resources=resources(cfg.resources),
            init=cfg.init,
        ),
        network_aliases=tuple(cfg.network_aliases),
        ipv4_address=cfg.ipv4_address,
        more_networks=tuple(
            EndpointRequest(e.network, tuple(e.aliases), e.ipv4_address) for e in cfg.more_networks
        ),
    )


def health_config(h: ipb.HealthConfig) -> HealthConfig:
    return HealthConfig(
        test=tuple(h.test), interval_ns=h.interval_ns, timeout_ns=h.timeout_ns,
        start_period_ns=h.start_period_ns, start_interval_ns=h.start_interval_ns,
        retries=h.retries,
    )


def health_config_message(h: HealthConfig | None) -> ipb.HealthConfig | None:
    if h is None:
        return None
    return ipb.HealthConfig(
        test=h.test, interval_ns=h.interval_ns, timeout_ns=h.timeout_ns,
        start_period_ns=h.start_period_ns, start_interval_ns=h.start_interval_ns,
        retries=h.retries,
    )


def health_message(h: Health | None) -> cpb.Health | None:
    if h is None:
        return None
    return cpb.Health(
        status=h.status, failing_streak=h.failing_streak,
        log=[cpb.HealthResult(start=timestamp(r.start_ns), end=timestamp(r.end_ns),
                              exit_code=r.exit_code, output=r.output) for r in h.log],
    )


def security(cfg: cpb.ContainerConfig) -> Security:
    return Security(
        cap_add=tuple(cfg.cap_add),
        cap_drop=tuple(cfg.cap_drop),
        privileged=cfg.privileged,
        security_opt=tuple(cfg.security_opt),
        read_only=cfg.read_only,
        devices=tuple(
            DeviceMapping(d.path_on_host, d.path_in_container, d.cgroup_permissions)
            for d in cfg.devices
        ),
        ulimits=tuple(Ulimit(u.name, u.soft, u.hard) for u in cfg.ulimits),
        sysctls=dict(cfg.sysctls),
        shm_size=cfg.shm_size,
        group_add=tuple(cfg.group_add),
        userns_mode=cfg.userns_mode,
    )


def security_fields(s: Security) -> dict[str, object]:
    """ContainerConfig's security fields, for inspect."""
    return dict(
        cap_add=s.cap_add, cap_drop=s.cap_drop, privileged=s.privileged,
        security_opt=s.security_opt, read_only=s.read_only,
        devices=[cpb.DeviceMapping(path_on_host=d.path_on_host,
                                   path_in_container=d.path_in_container,
                                   cgroup_permissions=d.cgroup_permissions) for d in s.devices],
        ulimits=[cpb.Ulimit(name=u.name, soft=u.soft, hard=u.hard) for u in s.ulimits],
        sysctls=dict(s.sysctls), shm_size=s.shm_size, group_add=s.group_add,
        userns_mode=s.userns_mode,
    )


# Resources' scalar fields: the same names in the message and the dataclass.
RESOURCE_SCALARS = (
    "memory", "memory_swap", "memory_reservation", "kernel_memory", "oom_kill_disable",
    "nano_cpus", "cpu_shares", "cpu_period", "cpu_quota", "cpuset_cpus", "cpuset_mems",
    "pids_limit", "blkio_weight",
)
# (message field, dataclass field) of the device lists.
RESOURCE_DEVICES = (
    ("blkio_device_read_bps", "device_read_bps"), ("blkio_device_write_bps", "device_write_bps"),
    ("blkio_device_read_iops", "device_read_iops"), ("blkio_device_write_iops", "device_write_iops"),
)


def restart_policy(p: cpb.RestartPolicy) -> RestartPolicy:
    """Unset: the domain's default ("no"); `restarts.check_policy` judges the rest."""
    return RestartPolicy(p.name or RestartPolicy().name, p.maximum_retry_count)


def resource_changes(r: cpb.Resources) -> dict[str, object]:
    """The fields a caller set (an update's changes), by the dataclass's names."""
    changes: dict[str, object] = {name: getattr(r, name) for name in RESOURCE_SCALARS if r.HasField(name)}
    for message_name, name in RESOURCE_DEVICES:
        if getattr(r, message_name):
            changes[name] = tuple(ThrottleDevice(d.path, d.rate) for d in getattr(r, message_name))
    return changes


def resources(r: cpb.Resources) -> Resources:
    return Resources(**resource_changes(r))  # type: ignore[arg-type]


def resources_message(r: Resources) -> cpb.Resources:
    m = cpb.Resources(**{name: getattr(r, name) for name in RESOURCE_SCALARS if getattr(r, name)})
    for message_name, name in RESOURCE_DEVICES:
        getattr(m, message_name).extend(
            cpb.ThrottleDevice(path=d.path, rate=d.rate) for d in getattr(r, name)
        )
    return m


def mount_request(m: cpb.Mount) -> MountSpec:
    return MountSpec(
        type=m.type, target=m.target, source=m.source, read_only=m.read_only,
        propagation=m.propagation, no_copy=m.no_copy, tmpfs_options=tuple(m.tmpfs_options),
    )


def mount_message(m: MountSpec) -> cpb.Mount:
    return cpb.Mount(
        type=m.type, source=m.source, target=m.target, read_only=m.read_only,
        propagation=m.propagation, no_copy=m.no_copy, tmpfs_options=m.tmpfs_options,
    )


def mount_point(m: MountSpec, volume_dir: Callable[[str], str]) -> cpb.MountPoint:
    """docker's inspect `Mounts` entry for one mount."""
    if m.type == MOUNT_VOLUME:
        return cpb.MountPoint(
            type=m.type, name=m.source, source=volume_dir(m.source), destination=m.target,
            driver="local", mode="ro" if m.read_only else "", rw=not m.read_only,
            origin=m.origin, anonymous=m.anonymous, image_volume=m.image_volume,
        )
    return cpb.MountPoint(
        type=m.type, source=m.source, destination=m.target,
        mode="ro" if m.read_only else "", rw=not m.read_only,
        propagation=(m.propagation or "rprivate") if m.type == MOUNT_BIND else "",
        origin=m.origin, image_volume=m.image_volume,
    )


def container(
    c: Container,
    lower_dirs: list[str],
    net: NetworkView | None = None,
    volume_dir: Callable[[str], str] = lambda name: "",
) -> cpb.Container:
    cfg = c.config
    host = c.host_config
    st = c.state
    net = net or NetworkView()
    first = host.networks[0] if host.networks else None
    return cpb.Container(
        id=c.id,
        name=c.name,
        image_id=c.image_id,
        image=cfg.image,
        config=cpb.ContainerConfig(
            image=cfg.image,
            name=c.name,
            cmd=cfg.cmd,
            entrypoint=cfg.entrypoint,
            entrypoint_set=bool(cfg.entrypoint),
            env=cfg.env,
            working_dir=cfg.working_dir,
            user=cfg.user,
            hostname=cfg.hostname,
            labels=dict(cfg.labels),
            open_stdin=cfg.open_stdin,
            stdin_once=cfg.stdin_once,
            tty=cfg.tty,
            stop_signal=cfg.stop_signal,
            stop_timeout=cfg.stop_timeout,
            auto_remove=host.auto_remove,
            log_max_size=host.log_config.max_size,
            log_max_file=host.log_config.max_files,
            network_mode=host.network_mode,
            network_aliases=first.aliases if first else (),
            ipv4_address=first.ipv4_address if first else "",
            mac_address=cfg.mac_address,
            publish=host.publish,
            publish_all=host.publish_all,
            expose=cfg.exposed_ports,
            dns=host.dns,
            dns_search=host.dns_search,
            dns_options=host.dns_options,
            extra_hosts=host.extra_hosts,
            binds=host.binds,
            mounts=[mount_message(m) for m in host.mount_requests],
            tmpfs=host.tmpfs,
            volumes_from=host.volumes_from,
            **security_fields(host.security),  # type: ignore[arg-type]
            restart_policy=cpb.RestartPolicy(
                name=host.restart_policy.name,
                maximum_retry_count=host.restart_policy.maximum_retry_count,
            ),
            resources=resources_message(host.resources),
            init=host.init,
            healthcheck=health_config_message(cfg.healthcheck),
        ),
        state=cpb.ContainerState(
            status=STATUS[st.status],
            pid=st.pid,
            exit_code=st.exit_code,
            started_at=timestamp(st.started_at_ns),
            finished_at=timestamp(st.finished_at_ns),
            error=st.error,
            shim_pid=st.shim_pid,
            oom_killed=st.oom_killed,
            health=health_message(st.health),
        ),
        created=timestamp(c.created_ns),
        path=c.path,
        args=c.args,
        restart_count=c.restart_count,
        log_path=c.log_path,
        state_dir=c.state_dir,
        lower_dirs=lower_dirs,
        upper_dir=f"{c.state_dir}/upper",
        network_settings=network_settings(net, cfg.exposed_ports),
        port_bindings=[port_binding(p) for p in net.asked],
        mounts=[mount_point(m, volume_dir) for m in host.mounts],
    )


def network_settings(net: NetworkView, exposed: tuple[str, ...]) -> cpb.NetworkSettings:
    return cpb.NetworkSettings(
        networks={
            e.network_name: cpb.EndpointSettings(
                network_id=e.network_id, ip_address=e.address, ip_prefix_len=e.prefix_len,
                gateway=e.gateway, mac_address=e.mac, aliases=e.aliases, interface=e.ifname,
                ipam_ipv4_address=e.static_address,
            )
            for e in net.endpoints
        },
        ports=[port_binding(p) for p in net.ports],
        exposed_ports=exposed,
        sandbox_key=net.sandbox_key,
    )


def port_binding(p: PortView) -> cpb.PortBinding:
    return cpb.PortBinding(protocol=p.protocol, container_port=p.container_port,
                           host_ip=p.host_ip, host_port=p.host_port, host_port_end=p.host_port_end)


def image(img: Image) -> ipb.Image:
    cfg = img.config
    return ipb.Image(
        id=img.id,
        repo_tags=img.repo_tags,
        repo_digests=img.repo_digests,
        created=timestamp(img.created_ns),
        size=img.size,
        config=ipb.ImageConfig(
            entrypoint=cfg.entrypoint,
            cmd=cfg.cmd,
            env=cfg.env,
            working_dir=cfg.working_dir,
            user=cfg.user,
            labels=dict(cfg.labels),
            stop_signal=cfg.stop_signal,
            exposed_ports=cfg.exposed_ports,
            volumes=cfg.volumes,
            healthcheck=health_config_message(cfg.healthcheck),
        ),
        layers=img.layers,
        architecture=img.architecture,
        os=img.os,
        author=img.author,
        comment=img.comment,
        manifest_digest=img.manifest_digest,
    )


def event(e: Event) -> epb.Event:
    return epb.Event(
        seq=e.seq,
        type=e.type,
        action=e.action,
        actor_id=e.actor_id,
        attributes=dict(e.attributes),
        time=timestamp(e.time_ns),
    )


def subscribe_response_bytes(e: Event) -> bytes:
    """The serialised `SubscribeResponse` carrying `e`: what an event subscriber is sent.

    The same bytes the generated stub's serializer would produce from
    `SubscribeResponse(event=event(e))`; made once and shared by every subscriber.
    """
    return epb.SubscribeResponse(event=event(e)).SerializeToString()
