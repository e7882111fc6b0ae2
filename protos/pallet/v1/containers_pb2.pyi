import datetime

from google.protobuf import timestamp_pb2 as _timestamp_pb2
from pallet.v1 import images_pb2 as _images_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class ContainerStatus(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    CONTAINER_STATUS_UNSPECIFIED: _ClassVar[ContainerStatus]
    CONTAINER_STATUS_CREATED: _ClassVar[ContainerStatus]
    CONTAINER_STATUS_RUNNING: _ClassVar[ContainerStatus]
    CONTAINER_STATUS_PAUSED: _ClassVar[ContainerStatus]
    CONTAINER_STATUS_RESTARTING: _ClassVar[ContainerStatus]
    CONTAINER_STATUS_REMOVING: _ClassVar[ContainerStatus]
    CONTAINER_STATUS_EXITED: _ClassVar[ContainerStatus]
    CONTAINER_STATUS_DEAD: _ClassVar[ContainerStatus]

class Stream(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    STREAM_UNSPECIFIED: _ClassVar[Stream]
    STREAM_STDOUT: _ClassVar[Stream]
    STREAM_STDERR: _ClassVar[Stream]

class ChangeKind(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    CHANGE_KIND_UNSPECIFIED: _ClassVar[ChangeKind]
    CHANGE_KIND_MODIFIED: _ClassVar[ChangeKind]
    CHANGE_KIND_ADDED: _ClassVar[ChangeKind]
    CHANGE_KIND_DELETED: _ClassVar[ChangeKind]
CONTAINER_STATUS_UNSPECIFIED: ContainerStatus
CONTAINER_STATUS_CREATED: ContainerStatus
CONTAINER_STATUS_RUNNING: ContainerStatus
CONTAINER_STATUS_PAUSED: ContainerStatus
CONTAINER_STATUS_RESTARTING: ContainerStatus
CONTAINER_STATUS_REMOVING: ContainerStatus
CONTAINER_STATUS_EXITED: ContainerStatus
CONTAINER_STATUS_DEAD: ContainerStatus
STREAM_UNSPECIFIED: Stream
STREAM_STDOUT: Stream
STREAM_STDERR: Stream
CHANGE_KIND_UNSPECIFIED: ChangeKind
CHANGE_KIND_MODIFIED: ChangeKind
CHANGE_KIND_ADDED: ChangeKind
CHANGE_KIND_DELETED: ChangeKind

class ContainerConfig(_message.Message):
    __slots__ = ("image", "name", "cmd", "entrypoint", "entrypoint_set", "env", "working_dir", "user", "hostname", "labels", "open_stdin", "auto_remove", "stop_signal", "stop_timeout", "log_max_size", "log_max_file", "network_mode", "network_aliases", "ipv4_address", "mac_address", "more_networks", "publish", "publish_all", "expose", "dns", "dns_search", "dns_options", "extra_hosts", "binds", "mounts", "tmpfs", "volumes_from", "resources", "cap_add", "cap_drop", "privileged", "security_opt", "read_only", "devices", "ulimits", "sysctls", "shm_size", "group_add", "userns_mode", "restart_policy", "tty", "console_height", "console_width", "init", "stdin_once", "healthcheck")
    class LabelsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    class SysctlsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    IMAGE_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    CMD_FIELD_NUMBER: _ClassVar[int]
    ENTRYPOINT_FIELD_NUMBER: _ClassVar[int]
    ENTRYPOINT_SET_FIELD_NUMBER: _ClassVar[int]
    ENV_FIELD_NUMBER: _ClassVar[int]
    WORKING_DIR_FIELD_NUMBER: _ClassVar[int]
    USER_FIELD_NUMBER: _ClassVar[int]
    HOSTNAME_FIELD_NUMBER: _ClassVar[int]
    LABELS_FIELD_NUMBER: _ClassVar[int]
    OPEN_STDIN_FIELD_NUMBER: _ClassVar[int]
    AUTO_REMOVE_FIELD_NUMBER: _ClassVar[int]
    STOP_SIGNAL_FIELD_NUMBER: _ClassVar[int]
    STOP_TIMEOUT_FIELD_NUMBER: _ClassVar[int]
    LOG_MAX_SIZE_FIELD_NUMBER: _ClassVar[int]
    LOG_MAX_FILE_FIELD_NUMBER: _ClassVar[int]
    NETWORK_MODE_FIELD_NUMBER: _ClassVar[int]
    NETWORK_ALIASES_FIELD_NUMBER: _ClassVar[int]
    IPV4_ADDRESS_FIELD_NUMBER: _ClassVar[int]
    MAC_ADDRESS_FIELD_NUMBER: _ClassVar[int]
    MORE_NETWORKS_FIELD_NUMBER: _ClassVar[int]
    PUBLISH_FIELD_NUMBER: _ClassVar[int]
    PUBLISH_ALL_FIELD_NUMBER: _ClassVar[int]
    EXPOSE_FIELD_NUMBER: _ClassVar[int]
    DNS_FIELD_NUMBER: _ClassVar[int]
    DNS_SEARCH_FIELD_NUMBER: _ClassVar[int]
    DNS_OPTIONS_FIELD_NUMBER: _ClassVar[int]
    EXTRA_HOSTS_FIELD_NUMBER: _ClassVar[int]
    BINDS_FIELD_NUMBER: _ClassVar[int]
    MOUNTS_FIELD_NUMBER: _ClassVar[int]
    TMPFS_FIELD_NUMBER: _ClassVar[int]
    VOLUMES_FROM_FIELD_NUMBER: _ClassVar[int]
    RESOURCES_FIELD_NUMBER: _ClassVar[int]
    CAP_ADD_FIELD_NUMBER: _ClassVar[int]
    CAP_DROP_FIELD_NUMBER: _ClassVar[int]
    PRIVILEGED_FIELD_NUMBER: _ClassVar[int]
    SECURITY_OPT_FIELD_NUMBER: _ClassVar[int]
    READ_ONLY_FIELD_NUMBER: _ClassVar[int]
    DEVICES_FIELD_NUMBER: _ClassVar[int]
    ULIMITS_FIELD_NUMBER: _ClassVar[int]
    SYSCTLS_FIELD_NUMBER: _ClassVar[int]
    SHM_SIZE_FIELD_NUMBER: _ClassVar[int]
    GROUP_ADD_FIELD_NUMBER: _ClassVar[int]
    USERNS_MODE_FIELD_NUMBER: _ClassVar[int]
    RESTART_POLICY_FIELD_NUMBER: _ClassVar[int]
    TTY_FIELD_NUMBER: _ClassVar[int]
    CONSOLE_HEIGHT_FIELD_NUMBER: _ClassVar[int]
    CONSOLE_WIDTH_FIELD_NUMBER: _ClassVar[int]
    INIT_FIELD_NUMBER: _ClassVar[int]
    STDIN_ONCE_FIELD_NUMBER: _ClassVar[int]
    HEALTHCHECK_FIELD_NUMBER: _ClassVar[int]
    image: str
    name: str
    cmd: _containers.RepeatedScalarFieldContainer[str]
    entrypoint: _containers.RepeatedScalarFieldContainer[str]
    entrypoint_set: bool
    env: _containers.RepeatedScalarFieldContainer[str]
    working_dir: str
    user: str
    hostname: str
    labels: _containers.ScalarMap[str, str]
    open_stdin: bool
    auto_remove: bool
    stop_signal: str
    stop_timeout: int
    log_max_size: int
    log_max_file: int
    network_mode: str
    network_aliases: _containers.RepeatedScalarFieldContainer[str]
    ipv4_address: str
    mac_address: str
    more_networks: _containers.RepeatedCompositeFieldContainer[EndpointRequest]
    publish: _containers.RepeatedScalarFieldContainer[str]
    publish_all: bool
    expose: _containers.RepeatedScalarFieldContainer[str]
    dns: _containers.RepeatedScalarFieldContainer[str]
    dns_search: _containers.RepeatedScalarFieldContainer[str]
    dns_options: _containers.RepeatedScalarFieldContainer[str]
    extra_hosts: _containers.RepeatedScalarFieldContainer[str]
    binds: _containers.RepeatedScalarFieldContainer[str]
    mounts: _containers.RepeatedCompositeFieldContainer[Mount]
    tmpfs: _containers.RepeatedScalarFieldContainer[str]
    volumes_from: _containers.RepeatedScalarFieldContainer[str]
    resources: Resources
    cap_add: _containers.RepeatedScalarFieldContainer[str]
    cap_drop: _containers.RepeatedScalarFieldContainer[str]
    privileged: bool
    security_opt: _containers.RepeatedScalarFieldContainer[str]
    read_only: bool
    devices: _containers.RepeatedCompositeFieldContainer[DeviceMapping]
    ulimits: _containers.RepeatedCompositeFieldContainer[Ulimit]
    sysctls: _containers.ScalarMap[str, str]
    shm_size: int
    group_add: _containers.RepeatedScalarFieldContainer[str]
    userns_mode: str
    restart_policy: RestartPolicy
    tty: bool
    console_height: int
    console_width: int
    init: bool
    stdin_once: bool
    healthcheck: _images_pb2.HealthConfig
    def __init__(self, image: _Optional[str] = ..., name: _Optional[str] = ..., cmd: _Optional[_Iterable[str]] = ..., entrypoint: _Optional[_Iterable[str]] = ..., entrypoint_set: _Optional[bool] = ..., env: _Optional[_Iterable[str]] = ..., working_dir: _Optional[str] = ..., user: _Optional[str] = ..., hostname: _Optional[str] = ..., labels: _Optional[_Mapping[str, str]] = ..., open_stdin: _Optional[bool] = ..., auto_remove: _Optional[bool] = ..., stop_signal: _Optional[str] = ..., stop_timeout: _Optional[int] = ..., log_max_size: _Optional[int] = ..., log_max_file: _Optional[int] = ..., network_mode: _Optional[str] = ..., network_aliases: _Optional[_Iterable[str]] = ..., ipv4_address: _Optional[str] = ..., mac_address: _Optional[str] = ..., more_networks: _Optional[_Iterable[_Union[EndpointRequest, _Mapping]]] = ..., publish: _Optional[_Iterable[str]] = ..., publish_all: _Optional[bool] = ..., expose: _Optional[_Iterable[str]] = ..., dns: _Optional[_Iterable[str]] = ..., dns_search: _Optional[_Iterable[str]] = ..., dns_options: _Optional[_Iterable[str]] = ..., extra_hosts: _Optional[_Iterable[str]] = ..., binds: _Optional[_Iterable[str]] = ..., mounts: _Optional[_Iterable[_Union[Mount, _Mapping]]] = ..., tmpfs: _Optional[_Iterable[str]] = ..., volumes_from: _Optional[_Iterable[str]] = ..., resources: _Optional[_Union[Resources, _Mapping]] = ..., cap_add: _Optional[_Iterable[str]] = ..., cap_drop: _Optional[_Iterable[str]] = ..., privileged: _Optional[bool] = ..., security_opt: _Optional[_Iterable[str]] = ..., read_only: _Optional[bool] = ..., devices: _Optional[_Iterable[_Union[DeviceMapping, _Mapping]]] = ..., ulimits: _Optional[_Iterable[_Union[Ulimit, _Mapping]]] = ..., sysctls: _Optional[_Mapping[str, str]] = ..., shm_size: _Optional[int] = ..., group_add: _Optional[_Iterable[str]] = ..., userns_mode: _Optional[str] = ..., restart_policy: _Optional[_Union[RestartPolicy, _Mapping]] = ..., tty: _Optional[bool] = ..., console_height: _Optional[int] = ..., console_width: _Optional[int] = ..., init: _Optional[bool] = ..., stdin_once: _Optional[bool] = ..., healthcheck: _Optional[_Union[_images_pb2.HealthConfig, _Mapping]] = ...) -> None: ...

class EndpointRequest(_message.Message):
    __slots__ = ("network", "aliases", "ipv4_address")
    NETWORK_FIELD_NUMBER: _ClassVar[int]
    ALIASES_FIELD_NUMBER: _ClassVar[int]
    IPV4_ADDRESS_FIELD_NUMBER: _ClassVar[int]
    network: str
    aliases: _containers.RepeatedScalarFieldContainer[str]
    ipv4_address: str
    def __init__(self, network: _Optional[str] = ..., aliases: _Optional[_Iterable[str]] = ..., ipv4_address: _Optional[str] = ...) -> None: ...

class DeviceMapping(_message.Message):
    __slots__ = ("path_on_host", "path_in_container", "cgroup_permissions")
    PATH_ON_HOST_FIELD_NUMBER: _ClassVar[int]
    PATH_IN_CONTAINER_FIELD_NUMBER: _ClassVar[int]
    CGROUP_PERMISSIONS_FIELD_NUMBER: _ClassVar[int]
    path_on_host: str
    path_in_container: str
    cgroup_permissions: str
    def __init__(self, path_on_host: _Optional[str] = ..., path_in_container: _Optional[str] = ..., cgroup_permissions: _Optional[str] = ...) -> None: ...

class Ulimit(_message.Message):
    __slots__ = ("name", "soft", "hard")
    NAME_FIELD_NUMBER: _ClassVar[int]
    SOFT_FIELD_NUMBER: _ClassVar[int]
    HARD_FIELD_NUMBER: _ClassVar[int]
    name: str
    soft: int
    hard: int
    def __init__(self, name: _Optional[str] = ..., soft: _Optional[int] = ..., hard: _Optional[int] = ...) -> None: ...

class RestartPolicy(_message.Message):
    __slots__ = ("name", "maximum_retry_count")
    NAME_FIELD_NUMBER: _ClassVar[int]
    MAXIMUM_RETRY_COUNT_FIELD_NUMBER: _ClassVar[int]
    name: str
    maximum_retry_count: int
    def __init__(self, name: _Optional[str] = ..., maximum_retry_count: _Optional[int] = ...) -> None: ...

class ThrottleDevice(_message.Message):
    __slots__ = ("path", "rate")
    PATH_FIELD_NUMBER: _ClassVar[int]
    RATE_FIELD_NUMBER: _ClassVar[int]
    path: str
    rate: int
    def __init__(self, path: _Optional[str] = ..., rate: _Optional[int] = ...) -> None: ...

class Resources(_message.Message):
    __slots__ = ("memory", "memory_swap", "memory_reservation", "kernel_memory", "oom_kill_disable", "nano_cpus", "cpu_shares", "cpu_period", "cpu_quota", "cpuset_cpus", "cpuset_mems", "pids_limit", "blkio_weight", "blkio_device_read_bps", "blkio_device_write_bps", "blkio_device_read_iops", "blkio_device_write_iops")
    MEMORY_FIELD_NUMBER: _ClassVar[int]
    MEMORY_SWAP_FIELD_NUMBER: _ClassVar[int]
    MEMORY_RESERVATION_FIELD_NUMBER: _ClassVar[int]
    KERNEL_MEMORY_FIELD_NUMBER: _ClassVar[int]
    OOM_KILL_DISABLE_FIELD_NUMBER: _ClassVar[int]
    NANO_CPUS_FIELD_NUMBER: _ClassVar[int]
    CPU_SHARES_FIELD_NUMBER: _ClassVar[int]
    CPU_PERIOD_FIELD_NUMBER: _ClassVar[int]
    CPU_QUOTA_FIELD_NUMBER: _ClassVar[int]
    CPUSET_CPUS_FIELD_NUMBER: _ClassVar[int]
    CPUSET_MEMS_FIELD_NUMBER: _ClassVar[int]
    PIDS_LIMIT_FIELD_NUMBER: _ClassVar[int]
    BLKIO_WEIGHT_FIELD_NUMBER: _ClassVar[int]
    BLKIO_DEVICE_READ_BPS_FIELD_NUMBER: _ClassVar[int]
    BLKIO_DEVICE_WRITE_BPS_FIELD_NUMBER: _ClassVar[int]
    BLKIO_DEVICE_READ_IOPS_FIELD_NUMBER: _ClassVar[int]
    BLKIO_DEVICE_WRITE_IOPS_FIELD_NUMBER: _ClassVar[int]
    memory: int
    memory_swap: int
    memory_reservation: int
    kernel_memory: int
    oom_kill_disable: bool
    nano_cpus: int
    cpu_shares: int
    cpu_period: int
    cpu_quota: int
    cpuset_cpus: str
    cpuset_mems: str
    pids_limit: int
    blkio_weight: int
    blkio_device_read_bps: _containers.RepeatedCompositeFieldContainer[ThrottleDevice]
    blkio_device_write_bps: _containers.RepeatedCompositeFieldContainer[ThrottleDevice]
    blkio_device_read_iops: _containers.RepeatedCompositeFieldContainer[ThrottleDevice]
    blkio_device_write_iops: _containers.RepeatedCompositeFieldContainer[ThrottleDevice]
    def __init__(self, memory: _Optional[int] = ..., memory_swap: _Optional[int] = ..., memory_reservation: _Optional[int] = ..., kernel_memory: _Optional[int] = ..., oom_kill_disable: _Optional[bool] = ..., nano_cpus: _Optional[int] = ..., cpu_shares: _Optional[int] = ..., cpu_period: _Optional[int] = ..., cpu_quota: _Optional[int] = ..., cpuset_cpus: _Optional[str] = ..., cpuset_mems: _Optional[str] = ..., pids_limit: _Optional[int] = ..., blkio_weight: _Optional[int] = ..., blkio_device_read_bps: _Optional[_Iterable[_Union[ThrottleDevice, _Mapping]]] = ..., blkio_device_write_bps: _Optional[_Iterable[_Union[ThrottleDevice, _Mapping]]] = ..., blkio_device_read_iops: _Optional[_Iterable[_Union[ThrottleDevice, _Mapping]]] = ..., blkio_device_write_iops: _Optional[_Iterable[_Union[ThrottleDevice, _Mapping]]] = ...) -> None: ...

class Mount(_message.Message):
    __slots__ = ("type", "source", "target", "read_only", "propagation", "no_copy", "tmpfs_options")
    TYPE_FIELD_NUMBER: _ClassVar[int]
    SOURCE_FIELD_NUMBER: _ClassVar[int]
    TARGET_FIELD_NUMBER: _ClassVar[int]
    READ_ONLY_FIELD_NUMBER: _ClassVar[int]
    PROPAGATION_FIELD_NUMBER: _ClassVar[int]
    NO_COPY_FIELD_NUMBER: _ClassVar[int]
    TMPFS_OPTIONS_FIELD_NUMBER: _ClassVar[int]
    type: str
    source: str
    target: str
    read_only: bool
    propagation: str
    no_copy: bool
    tmpfs_options: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, type: _Optional[str] = ..., source: _Optional[str] = ..., target: _Optional[str] = ..., read_only: _Optional[bool] = ..., propagation: _Optional[str] = ..., no_copy: _Optional[bool] = ..., tmpfs_options: _Optional[_Iterable[str]] = ...) -> None: ...

class MountPoint(_message.Message):
    __slots__ = ("type", "name", "source", "destination", "driver", "mode", "rw", "propagation", "origin", "anonymous", "image_volume")
    TYPE_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    SOURCE_FIELD_NUMBER: _ClassVar[int]
    DESTINATION_FIELD_NUMBER: _ClassVar[int]
    DRIVER_FIELD_NUMBER: _ClassVar[int]
    MODE_FIELD_NUMBER: _ClassVar[int]
    RW_FIELD_NUMBER: _ClassVar[int]
    PROPAGATION_FIELD_NUMBER: _ClassVar[int]
    ORIGIN_FIELD_NUMBER: _ClassVar[int]
    ANONYMOUS_FIELD_NUMBER: _ClassVar[int]
    IMAGE_VOLUME_FIELD_NUMBER: _ClassVar[int]
    type: str
    name: str
    source: str
    destination: str
    driver: str
    mode: str
    rw: bool
    propagation: str
    origin: str
    anonymous: bool
    image_volume: bool
    def __init__(self, type: _Optional[str] = ..., name: _Optional[str] = ..., source: _Optional[str] = ..., destination: _Optional[str] = ..., driver: _Optional[str] = ..., mode: _Optional[str] = ..., rw: _Optional[bool] = ..., propagation: _Optional[str] = ..., origin: _Optional[str] = ..., anonymous: _Optional[bool] = ..., image_volume: _Optional[bool] = ...) -> None: ...

class PortBinding(_message.Message):
    __slots__ = ("protocol", "container_port", "host_ip", "host_port", "host_port_end")
    PROTOCOL_FIELD_NUMBER: _ClassVar[int]
    CONTAINER_PORT_FIELD_NUMBER: _ClassVar[int]
    HOST_IP_FIELD_NUMBER: _ClassVar[int]
    HOST_PORT_FIELD_NUMBER: _ClassVar[int]
    HOST_PORT_END_FIELD_NUMBER: _ClassVar[int]
    protocol: str
    container_port: int
    host_ip: str
    host_port: int
    host_port_end: int
    def __init__(self, protocol: _Optional[str] = ..., container_port: _Optional[int] = ..., host_ip: _Optional[str] = ..., host_port: _Optional[int] = ..., host_port_end: _Optional[int] = ...) -> None: ...

class EndpointSettings(_message.Message):
    __slots__ = ("network_id", "ip_address", "ip_prefix_len", "gateway", "mac_address", "aliases", "interface", "ipam_ipv4_address")
    NETWORK_ID_FIELD_NUMBER: _ClassVar[int]
    IP_ADDRESS_FIELD_NUMBER: _ClassVar[int]
    IP_PREFIX_LEN_FIELD_NUMBER: _ClassVar[int]
    GATEWAY_FIELD_NUMBER: _ClassVar[int]
    MAC_ADDRESS_FIELD_NUMBER: _ClassVar[int]
    ALIASES_FIELD_NUMBER: _ClassVar[int]
    INTERFACE_FIELD_NUMBER: _ClassVar[int]
    IPAM_IPV4_ADDRESS_FIELD_NUMBER: _ClassVar[int]
    network_id: str
    ip_address: str
    ip_prefix_len: int
    gateway: str
    mac_address: str
    aliases: _containers.RepeatedScalarFieldContainer[str]
    interface: str
    ipam_ipv4_address: str
    def __init__(self, network_id: _Optional[str] = ..., ip_address: _Optional[str] = ..., ip_prefix_len: _Optional[int] = ..., gateway: _Optional[str] = ..., mac_address: _Optional[str] = ..., aliases: _Optional[_Iterable[str]] = ..., interface: _Optional[str] = ..., ipam_ipv4_address: _Optional[str] = ...) -> None: ...

class NetworkSettings(_message.Message):
    __slots__ = ("networks", "ports", "exposed_ports", "sandbox_key")
    class NetworksEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: EndpointSettings
        def __init__(self, key: _Optional[str] = ..., value: _Optional[_Union[EndpointSettings, _Mapping]] = ...) -> None: ...
    NETWORKS_FIELD_NUMBER: _ClassVar[int]
    PORTS_FIELD_NUMBER: _ClassVar[int]
    EXPOSED_PORTS_FIELD_NUMBER: _ClassVar[int]
    SANDBOX_KEY_FIELD_NUMBER: _ClassVar[int]
    networks: _containers.MessageMap[str, EndpointSettings]
    ports: _containers.RepeatedCompositeFieldContainer[PortBinding]
    exposed_ports: _containers.RepeatedScalarFieldContainer[str]
    sandbox_key: str
    def __init__(self, networks: _Optional[_Mapping[str, EndpointSettings]] = ..., ports: _Optional[_Iterable[_Union[PortBinding, _Mapping]]] = ..., exposed_ports: _Optional[_Iterable[str]] = ..., sandbox_key: _Optional[str] = ...) -> None: ...

class ContainerState(_message.Message):
    __slots__ = ("status", "pid", "exit_code", "started_at", "finished_at", "error", "oom_killed", "shim_pid", "health")
    STATUS_FIELD_NUMBER: _ClassVar[int]
    PID_FIELD_NUMBER: _ClassVar[int]
    EXIT_CODE_FIELD_NUMBER: _ClassVar[int]
    STARTED_AT_FIELD_NUMBER: _ClassVar[int]
    FINISHED_AT_FIELD_NUMBER: _ClassVar[int]
    ERROR_FIELD_NUMBER: _ClassVar[int]
    OOM_KILLED_FIELD_NUMBER: _ClassVar[int]
    SHIM_PID_FIELD_NUMBER: _ClassVar[int]
    HEALTH_FIELD_NUMBER: _ClassVar[int]
    status: ContainerStatus
    pid: int
    exit_code: int
    started_at: _timestamp_pb2.Timestamp
    finished_at: _timestamp_pb2.Timestamp
    error: str
    oom_killed: bool
    shim_pid: int
    health: Health
    def __init__(self, status: _Optional[_Union[ContainerStatus, str]] = ..., pid: _Optional[int] = ..., exit_code: _Optional[int] = ..., started_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., finished_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., error: _Optional[str] = ..., oom_killed: _Optional[bool] = ..., shim_pid: _Optional[int] = ..., health: _Optional[_Union[Health, _Mapping]] = ...) -> None: ...

class Health(_message.Message):
    __slots__ = ("status", "failing_streak", "log")
    STATUS_FIELD_NUMBER: _ClassVar[int]
    FAILING_STREAK_FIELD_NUMBER: _ClassVar[int]
    LOG_FIELD_NUMBER: _ClassVar[int]
    status: str
    failing_streak: int
    log: _containers.RepeatedCompositeFieldContainer[HealthResult]
    def __init__(self, status: _Optional[str] = ..., failing_streak: _Optional[int] = ..., log: _Optional[_Iterable[_Union[HealthResult, _Mapping]]] = ...) -> None: ...

class HealthResult(_message.Message):
    __slots__ = ("start", "end", "exit_code", "output")
    START_FIELD_NUMBER: _ClassVar[int]
    END_FIELD_NUMBER: _ClassVar[int]
    EXIT_CODE_FIELD_NUMBER: _ClassVar[int]
    OUTPUT_FIELD_NUMBER: _ClassVar[int]
    start: _timestamp_pb2.Timestamp
    end: _timestamp_pb2.Timestamp
    exit_code: int
    output: str
    def __init__(self, start: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., end: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., exit_code: _Optional[int] = ..., output: _Optional[str] = ...) -> None: ...

class Container(_message.Message):
    __slots__ = ("id", "name", "image_id", "image", "config", "state", "created", "path", "args", "restart_count", "log_path", "state_dir", "lower_dirs", "upper_dir", "network_settings", "port_bindings", "mounts", "size_rw", "size_root_fs")
    ID_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    IMAGE_ID_FIELD_NUMBER: _ClassVar[int]
    IMAGE_FIELD_NUMBER: _ClassVar[int]
    CONFIG_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    CREATED_FIELD_NUMBER: _ClassVar[int]
    PATH_FIELD_NUMBER: _ClassVar[int]
    ARGS_FIELD_NUMBER: _ClassVar[int]
    RESTART_COUNT_FIELD_NUMBER: _ClassVar[int]
    LOG_PATH_FIELD_NUMBER: _ClassVar[int]
    STATE_DIR_FIELD_NUMBER: _ClassVar[int]
    LOWER_DIRS_FIELD_NUMBER: _ClassVar[int]
    UPPER_DIR_FIELD_NUMBER: _ClassVar[int]
    NETWORK_SETTINGS_FIELD_NUMBER: _ClassVar[int]
    PORT_BINDINGS_FIELD_NUMBER: _ClassVar[int]
    MOUNTS_FIELD_NUMBER: _ClassVar[int]
    SIZE_RW_FIELD_NUMBER: _ClassVar[int]
    SIZE_ROOT_FS_FIELD_NUMBER: _ClassVar[int]
    id: str
    name: str
    image_id: str
    image: str
    config: ContainerConfig
    state: ContainerState
    created: _timestamp_pb2.Timestamp
    path: str
    args: _containers.RepeatedScalarFieldContainer[str]
    restart_count: int
    log_path: str
    state_dir: str
    lower_dirs: _containers.RepeatedScalarFieldContainer[str]
    upper_dir: str
    network_settings: NetworkSettings
    port_bindings: _containers.RepeatedCompositeFieldContainer[PortBinding]
    mounts: _containers.RepeatedCompositeFieldContainer[MountPoint]
    size_rw: int
    size_root_fs: int
    def __init__(self, id: _Optional[str] = ..., name: _Optional[str] = ..., image_id: _Optional[str] = ..., image: _Optional[str] = ..., config: _Optional[_Union[ContainerConfig, _Mapping]] = ..., state: _Optional[_Union[ContainerState, _Mapping]] = ..., created: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., path: _Optional[str] = ..., args: _Optional[_Iterable[str]] = ..., restart_count: _Optional[int] = ..., log_path: _Optional[str] = ..., state_dir: _Optional[str] = ..., lower_dirs: _Optional[_Iterable[str]] = ..., upper_dir: _Optional[str] = ..., network_settings: _Optional[_Union[NetworkSettings, _Mapping]] = ..., port_bindings: _Optional[_Iterable[_Union[PortBinding, _Mapping]]] = ..., mounts: _Optional[_Iterable[_Union[MountPoint, _Mapping]]] = ..., size_rw: _Optional[int] = ..., size_root_fs: _Optional[int] = ...) -> None: ...

class CreateContainerRequest(_message.Message):
    __slots__ = ("config",)
    CONFIG_FIELD_NUMBER: _ClassVar[int]
    config: ContainerConfig
    def __init__(self, config: _Optional[_Union[ContainerConfig, _Mapping]] = ...) -> None: ...

class CreateContainerResponse(_message.Message):
    __slots__ = ("id", "name", "warnings")
    ID_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    WARNINGS_FIELD_NUMBER: _ClassVar[int]
    id: str
    name: str
    warnings: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, id: _Optional[str] = ..., name: _Optional[str] = ..., warnings: _Optional[_Iterable[str]] = ...) -> None: ...

class StartContainerRequest(_message.Message):
    __slots__ = ("container",)
    CONTAINER_FIELD_NUMBER: _ClassVar[int]
    container: str
    def __init__(self, container: _Optional[str] = ...) -> None: ...

class StartContainerResponse(_message.Message):
    __slots__ = ("pid", "already_running")
    PID_FIELD_NUMBER: _ClassVar[int]
    ALREADY_RUNNING_FIELD_NUMBER: _ClassVar[int]
    pid: int
    already_running: bool
    def __init__(self, pid: _Optional[int] = ..., already_running: _Optional[bool] = ...) -> None: ...

class StopContainerRequest(_message.Message):
    __slots__ = ("container", "timeout", "signal")
    CONTAINER_FIELD_NUMBER: _ClassVar[int]
    TIMEOUT_FIELD_NUMBER: _ClassVar[int]
    SIGNAL_FIELD_NUMBER: _ClassVar[int]
    container: str
    timeout: int
    signal: str
    def __init__(self, container: _Optional[str] = ..., timeout: _Optional[int] = ..., signal: _Optional[str] = ...) -> None: ...

class StopContainerResponse(_message.Message):
    __slots__ = ("already_stopped",)
    ALREADY_STOPPED_FIELD_NUMBER: _ClassVar[int]
    already_stopped: bool
    def __init__(self, already_stopped: _Optional[bool] = ...) -> None: ...

class KillContainerRequest(_message.Message):
    __slots__ = ("container", "signal")
    CONTAINER_FIELD_NUMBER: _ClassVar[int]
    SIGNAL_FIELD_NUMBER: _ClassVar[int]
    container: str
    signal: str
    def __init__(self, container: _Optional[str] = ..., signal: _Optional[str] = ...) -> None: ...

class KillContainerResponse(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class RestartContainerRequest(_message.Message):
    __slots__ = ("container", "timeout", "signal")
    CONTAINER_FIELD_NUMBER: _ClassVar[int]
    TIMEOUT_FIELD_NUMBER: _ClassVar[int]
    SIGNAL_FIELD_NUMBER: _ClassVar[int]
    container: str
    timeout: int
    signal: str
    def __init__(self, container: _Optional[str] = ..., timeout: _Optional[int] = ..., signal: _Optional[str] = ...) -> None: ...

class RestartContainerResponse(_message.Message):
    __slots__ = ("pid",)
    PID_FIELD_NUMBER: _ClassVar[int]
    pid: int
    def __init__(self, pid: _Optional[int] = ...) -> None: ...

class RemoveContainerRequest(_message.Message):
    __slots__ = ("container", "force", "volumes")
    CONTAINER_FIELD_NUMBER: _ClassVar[int]
    FORCE_FIELD_NUMBER: _ClassVar[int]
    VOLUMES_FIELD_NUMBER: _ClassVar[int]
    container: str
    force: bool
    volumes: bool
    def __init__(self, container: _Optional[str] = ..., force: _Optional[bool] = ..., volumes: _Optional[bool] = ...) -> None: ...

class RemoveContainerResponse(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class ListContainersRequest(_message.Message):
    __slots__ = ("all", "filters", "size", "limit")
    ALL_FIELD_NUMBER: _ClassVar[int]
    FILTERS_FIELD_NUMBER: _ClassVar[int]
    SIZE_FIELD_NUMBER: _ClassVar[int]
    LIMIT_FIELD_NUMBER: _ClassVar[int]
    all: bool
    filters: _containers.RepeatedScalarFieldContainer[str]
    size: bool
    limit: int
    def __init__(self, all: _Optional[bool] = ..., filters: _Optional[_Iterable[str]] = ..., size: _Optional[bool] = ..., limit: _Optional[int] = ...) -> None: ...

class ListContainersResponse(_message.Message):
    __slots__ = ("containers",)
    CONTAINERS_FIELD_NUMBER: _ClassVar[int]
    containers: _containers.RepeatedCompositeFieldContainer[Container]
    def __init__(self, containers: _Optional[_Iterable[_Union[Container, _Mapping]]] = ...) -> None: ...

class InspectContainerRequest(_message.Message):
    __slots__ = ("container", "size")
    CONTAINER_FIELD_NUMBER: _ClassVar[int]
    SIZE_FIELD_NUMBER: _ClassVar[int]
    container: str
    size: bool
    def __init__(self, container: _Optional[str] = ..., size: _Optional[bool] = ...) -> None: ...

class InspectContainerResponse(_message.Message):
    __slots__ = ("container",)
    CONTAINER_FIELD_NUMBER: _ClassVar[int]
    container: Container
    def __init__(self, container: _Optional[_Union[Container, _Mapping]] = ...) -> None: ...

class WaitContainerRequest(_message.Message):
    __slots__ = ("container", "condition")
    CONTAINER_FIELD_NUMBER: _ClassVar[int]
    CONDITION_FIELD_NUMBER: _ClassVar[int]
    container: str
    condition: str
    def __init__(self, container: _Optional[str] = ..., condition: _Optional[str] = ...) -> None: ...

class WaitContainerResponse(_message.Message):
    __slots__ = ("exit_code", "error")
    EXIT_CODE_FIELD_NUMBER: _ClassVar[int]
    ERROR_FIELD_NUMBER: _ClassVar[int]
    exit_code: int
    error: str
    def __init__(self, exit_code: _Optional[int] = ..., error: _Optional[str] = ...) -> None: ...

class LogsRequest(_message.Message):
    __slots__ = ("container", "follow", "tail", "since", "until", "stdout", "stderr")
    CONTAINER_FIELD_NUMBER: _ClassVar[int]
    FOLLOW_FIELD_NUMBER: _ClassVar[int]
    TAIL_FIELD_NUMBER: _ClassVar[int]
    SINCE_FIELD_NUMBER: _ClassVar[int]
    UNTIL_FIELD_NUMBER: _ClassVar[int]
    STDOUT_FIELD_NUMBER: _ClassVar[int]
    STDERR_FIELD_NUMBER: _ClassVar[int]
    container: str
    follow: bool
    tail: int
    since: _timestamp_pb2.Timestamp
    until: _timestamp_pb2.Timestamp
    stdout: bool
    stderr: bool
    def __init__(self, container: _Optional[str] = ..., follow: _Optional[bool] = ..., tail: _Optional[int] = ..., since: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., until: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., stdout: _Optional[bool] = ..., stderr: _Optional[bool] = ...) -> None: ...

class LogChunk(_message.Message):
    __slots__ = ("stream", "time_unix_nano", "data")
    STREAM_FIELD_NUMBER: _ClassVar[int]
    TIME_UNIX_NANO_FIELD_NUMBER: _ClassVar[int]
    DATA_FIELD_NUMBER: _ClassVar[int]
    stream: Stream
    time_unix_nano: int
    data: bytes
    def __init__(self, stream: _Optional[_Union[Stream, str]] = ..., time_unix_nano: _Optional[int] = ..., data: _Optional[bytes] = ...) -> None: ...

class LogsResponse(_message.Message):
    __slots__ = ("chunks",)
    CHUNKS_FIELD_NUMBER: _ClassVar[int]
    chunks: _containers.RepeatedCompositeFieldContainer[LogChunk]
    def __init__(self, chunks: _Optional[_Iterable[_Union[LogChunk, _Mapping]]] = ...) -> None: ...

class AttachOpen(_message.Message):
    __slots__ = ("container", "stdin", "stdout", "stderr", "running_only")
    CONTAINER_FIELD_NUMBER: _ClassVar[int]
    STDIN_FIELD_NUMBER: _ClassVar[int]
    STDOUT_FIELD_NUMBER: _ClassVar[int]
    STDERR_FIELD_NUMBER: _ClassVar[int]
    RUNNING_ONLY_FIELD_NUMBER: _ClassVar[int]
    container: str
    stdin: bool
    stdout: bool
    stderr: bool
    running_only: bool
    def __init__(self, container: _Optional[str] = ..., stdin: _Optional[bool] = ..., stdout: _Optional[bool] = ..., stderr: _Optional[bool] = ..., running_only: _Optional[bool] = ...) -> None: ...

class AttachRequest(_message.Message):
    __slots__ = ("open", "stdin", "close_stdin")
    OPEN_FIELD_NUMBER: _ClassVar[int]
    STDIN_FIELD_NUMBER: _ClassVar[int]
    CLOSE_STDIN_FIELD_NUMBER: _ClassVar[int]
    open: AttachOpen
    stdin: bytes
    close_stdin: bool
    def __init__(self, open: _Optional[_Union[AttachOpen, _Mapping]] = ..., stdin: _Optional[bytes] = ..., close_stdin: _Optional[bool] = ...) -> None: ...

class Exit(_message.Message):
    __slots__ = ("exit_code", "error")
    EXIT_CODE_FIELD_NUMBER: _ClassVar[int]
    ERROR_FIELD_NUMBER: _ClassVar[int]
    exit_code: int
    error: str
    def __init__(self, exit_code: _Optional[int] = ..., error: _Optional[str] = ...) -> None: ...

class AttachReady(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class AttachResponse(_message.Message):
    __slots__ = ("ready", "output", "exit")
    READY_FIELD_NUMBER: _ClassVar[int]
    OUTPUT_FIELD_NUMBER: _ClassVar[int]
    EXIT_FIELD_NUMBER: _ClassVar[int]
    ready: AttachReady
    output: LogChunk
    exit: Exit
    def __init__(self, ready: _Optional[_Union[AttachReady, _Mapping]] = ..., output: _Optional[_Union[LogChunk, _Mapping]] = ..., exit: _Optional[_Union[Exit, _Mapping]] = ...) -> None: ...

class ExecOpen(_message.Message):
    __slots__ = ("container", "cmd", "env", "working_dir", "user", "stdin", "tty", "console_height", "console_width", "exec_id")
    CONTAINER_FIELD_NUMBER: _ClassVar[int]
    CMD_FIELD_NUMBER: _ClassVar[int]
    ENV_FIELD_NUMBER: _ClassVar[int]
    WORKING_DIR_FIELD_NUMBER: _ClassVar[int]
    USER_FIELD_NUMBER: _ClassVar[int]
    STDIN_FIELD_NUMBER: _ClassVar[int]
    TTY_FIELD_NUMBER: _ClassVar[int]
    CONSOLE_HEIGHT_FIELD_NUMBER: _ClassVar[int]
    CONSOLE_WIDTH_FIELD_NUMBER: _ClassVar[int]
    EXEC_ID_FIELD_NUMBER: _ClassVar[int]
    container: str
    cmd: _containers.RepeatedScalarFieldContainer[str]
    env: _containers.RepeatedScalarFieldContainer[str]
    working_dir: str
    user: str
    stdin: bool
    tty: bool
    console_height: int
    console_width: int
    exec_id: str
    def __init__(self, container: _Optional[str] = ..., cmd: _Optional[_Iterable[str]] = ..., env: _Optional[_Iterable[str]] = ..., working_dir: _Optional[str] = ..., user: _Optional[str] = ..., stdin: _Optional[bool] = ..., tty: _Optional[bool] = ..., console_height: _Optional[int] = ..., console_width: _Optional[int] = ..., exec_id: _Optional[str] = ...) -> None: ...

class ExecProcess(_message.Message):
    __slots__ = ("cmd", "env", "working_dir", "user", "stdin", "stdout", "stderr", "tty", "privileged", "detach_keys", "console_height", "console_width")
    CMD_FIELD_NUMBER: _ClassVar[int]
    ENV_FIELD_NUMBER: _ClassVar[int]
    WORKING_DIR_FIELD_NUMBER: _ClassVar[int]
    USER_FIELD_NUMBER: _ClassVar[int]
    STDIN_FIELD_NUMBER: _ClassVar[int]
    STDOUT_FIELD_NUMBER: _ClassVar[int]
    STDERR_FIELD_NUMBER: _ClassVar[int]
    TTY_FIELD_NUMBER: _ClassVar[int]
    PRIVILEGED_FIELD_NUMBER: _ClassVar[int]
    DETACH_KEYS_FIELD_NUMBER: _ClassVar[int]
    CONSOLE_HEIGHT_FIELD_NUMBER: _ClassVar[int]
    CONSOLE_WIDTH_FIELD_NUMBER: _ClassVar[int]
    cmd: _containers.RepeatedScalarFieldContainer[str]
    env: _containers.RepeatedScalarFieldContainer[str]
    working_dir: str
    user: str
    stdin: bool
    stdout: bool
    stderr: bool
    tty: bool
    privileged: bool
    detach_keys: str
    console_height: int
    console_width: int
    def __init__(self, cmd: _Optional[_Iterable[str]] = ..., env: _Optional[_Iterable[str]] = ..., working_dir: _Optional[str] = ..., user: _Optional[str] = ..., stdin: _Optional[bool] = ..., stdout: _Optional[bool] = ..., stderr: _Optional[bool] = ..., tty: _Optional[bool] = ..., privileged: _Optional[bool] = ..., detach_keys: _Optional[str] = ..., console_height: _Optional[int] = ..., console_width: _Optional[int] = ...) -> None: ...

class CreateExecRequest(_message.Message):
    __slots__ = ("container", "process")
    CONTAINER_FIELD_NUMBER: _ClassVar[int]
    PROCESS_FIELD_NUMBER: _ClassVar[int]
    container: str
    process: ExecProcess
    def __init__(self, container: _Optional[str] = ..., process: _Optional[_Union[ExecProcess, _Mapping]] = ...) -> None: ...

class CreateExecResponse(_message.Message):
    __slots__ = ("exec_id",)
    EXEC_ID_FIELD_NUMBER: _ClassVar[int]
    exec_id: str
    def __init__(self, exec_id: _Optional[str] = ...) -> None: ...

class InspectExecRequest(_message.Message):
    __slots__ = ("exec_id",)
    EXEC_ID_FIELD_NUMBER: _ClassVar[int]
    exec_id: str
    def __init__(self, exec_id: _Optional[str] = ...) -> None: ...

class ExecInstance(_message.Message):
    __slots__ = ("id", "container_id", "process", "running", "pid", "exit", "created")
    ID_FIELD_NUMBER: _ClassVar[int]
    CONTAINER_ID_FIELD_NUMBER: _ClassVar[int]
    PROCESS_FIELD_NUMBER: _ClassVar[int]
    RUNNING_FIELD_NUMBER: _ClassVar[int]
    PID_FIELD_NUMBER: _ClassVar[int]
    EXIT_FIELD_NUMBER: _ClassVar[int]
    CREATED_FIELD_NUMBER: _ClassVar[int]
    id: str
    container_id: str
    process: ExecProcess
    running: bool
    pid: int
    exit: Exit
    created: _timestamp_pb2.Timestamp
    def __init__(self, id: _Optional[str] = ..., container_id: _Optional[str] = ..., process: _Optional[_Union[ExecProcess, _Mapping]] = ..., running: _Optional[bool] = ..., pid: _Optional[int] = ..., exit: _Optional[_Union[Exit, _Mapping]] = ..., created: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class InspectExecResponse(_message.Message):
    __slots__ = ("exec",)
    EXEC_FIELD_NUMBER: _ClassVar[int]
    exec: ExecInstance
    def __init__(self, exec: _Optional[_Union[ExecInstance, _Mapping]] = ...) -> None: ...

class ExecStarted(_message.Message):
    __slots__ = ("exec_id", "pid")
    EXEC_ID_FIELD_NUMBER: _ClassVar[int]
    PID_FIELD_NUMBER: _ClassVar[int]
    exec_id: str
    pid: int
    def __init__(self, exec_id: _Optional[str] = ..., pid: _Optional[int] = ...) -> None: ...

class ExecRequest(_message.Message):
    __slots__ = ("open", "stdin", "close_stdin")
    OPEN_FIELD_NUMBER: _ClassVar[int]
    STDIN_FIELD_NUMBER: _ClassVar[int]
    CLOSE_STDIN_FIELD_NUMBER: _ClassVar[int]
    open: ExecOpen
    stdin: bytes
    close_stdin: bool
    def __init__(self, open: _Optional[_Union[ExecOpen, _Mapping]] = ..., stdin: _Optional[bytes] = ..., close_stdin: _Optional[bool] = ...) -> None: ...

class ExecResponse(_message.Message):
    __slots__ = ("started", "output", "exit")
    STARTED_FIELD_NUMBER: _ClassVar[int]
    OUTPUT_FIELD_NUMBER: _ClassVar[int]
    EXIT_FIELD_NUMBER: _ClassVar[int]
    started: ExecStarted
    output: LogChunk
    exit: Exit
    def __init__(self, started: _Optional[_Union[ExecStarted, _Mapping]] = ..., output: _Optional[_Union[LogChunk, _Mapping]] = ..., exit: _Optional[_Union[Exit, _Mapping]] = ...) -> None: ...

class ExportContainerRequest(_message.Message):
    __slots__ = ("container",)
    CONTAINER_FIELD_NUMBER: _ClassVar[int]
    container: str
    def __init__(self, container: _Optional[str] = ...) -> None: ...

class ExportContainerResponse(_message.Message):
    __slots__ = ("chunk",)
    CHUNK_FIELD_NUMBER: _ClassVar[int]
    chunk: bytes
    def __init__(self, chunk: _Optional[bytes] = ...) -> None: ...

class PathStat(_message.Message):
    __slots__ = ("name", "size", "mode", "mtime", "link_target")
    NAME_FIELD_NUMBER: _ClassVar[int]
    SIZE_FIELD_NUMBER: _ClassVar[int]
    MODE_FIELD_NUMBER: _ClassVar[int]
    MTIME_FIELD_NUMBER: _ClassVar[int]
    LINK_TARGET_FIELD_NUMBER: _ClassVar[int]
    name: str
    size: int
    mode: int
    mtime: _timestamp_pb2.Timestamp
    link_target: str
    def __init__(self, name: _Optional[str] = ..., size: _Optional[int] = ..., mode: _Optional[int] = ..., mtime: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., link_target: _Optional[str] = ...) -> None: ...

class StatPathRequest(_message.Message):
    __slots__ = ("container", "path")
    CONTAINER_FIELD_NUMBER: _ClassVar[int]
    PATH_FIELD_NUMBER: _ClassVar[int]
    container: str
    path: str
    def __init__(self, container: _Optional[str] = ..., path: _Optional[str] = ...) -> None: ...

class StatPathResponse(_message.Message):
    __slots__ = ("stat",)
    STAT_FIELD_NUMBER: _ClassVar[int]
    stat: PathStat
    def __init__(self, stat: _Optional[_Union[PathStat, _Mapping]] = ...) -> None: ...

class GetArchiveRequest(_message.Message):
    __slots__ = ("container", "path", "follow_link")
    CONTAINER_FIELD_NUMBER: _ClassVar[int]
    PATH_FIELD_NUMBER: _ClassVar[int]
    FOLLOW_LINK_FIELD_NUMBER: _ClassVar[int]
    container: str
    path: str
    follow_link: bool
    def __init__(self, container: _Optional[str] = ..., path: _Optional[str] = ..., follow_link: _Optional[bool] = ...) -> None: ...

class GetArchiveResponse(_message.Message):
    __slots__ = ("stat", "chunk")
    STAT_FIELD_NUMBER: _ClassVar[int]
    CHUNK_FIELD_NUMBER: _ClassVar[int]
    stat: PathStat
    chunk: bytes
    def __init__(self, stat: _Optional[_Union[PathStat, _Mapping]] = ..., chunk: _Optional[bytes] = ...) -> None: ...

class PutArchiveHeader(_message.Message):
    __slots__ = ("container", "path", "copy_uid_gid", "no_overwrite_dir_non_dir")
    CONTAINER_FIELD_NUMBER: _ClassVar[int]
    PATH_FIELD_NUMBER: _ClassVar[int]
    COPY_UID_GID_FIELD_NUMBER: _ClassVar[int]
    NO_OVERWRITE_DIR_NON_DIR_FIELD_NUMBER: _ClassVar[int]
    container: str
    path: str
    copy_uid_gid: bool
    no_overwrite_dir_non_dir: bool
    def __init__(self, container: _Optional[str] = ..., path: _Optional[str] = ..., copy_uid_gid: _Optional[bool] = ..., no_overwrite_dir_non_dir: _Optional[bool] = ...) -> None: ...

class PutArchiveRequest(_message.Message):
    __slots__ = ("header", "chunk", "end")
    HEADER_FIELD_NUMBER: _ClassVar[int]
    CHUNK_FIELD_NUMBER: _ClassVar[int]
    END_FIELD_NUMBER: _ClassVar[int]
    header: PutArchiveHeader
    chunk: bytes
    end: _images_pb2.UploadEnd
    def __init__(self, header: _Optional[_Union[PutArchiveHeader, _Mapping]] = ..., chunk: _Optional[bytes] = ..., end: _Optional[_Union[_images_pb2.UploadEnd, _Mapping]] = ...) -> None: ...

class PutArchiveResponse(_message.Message):
    __slots__ = ("entries", "size")
    ENTRIES_FIELD_NUMBER: _ClassVar[int]
    SIZE_FIELD_NUMBER: _ClassVar[int]
    entries: int
    size: int
    def __init__(self, entries: _Optional[int] = ..., size: _Optional[int] = ...) -> None: ...

class ContainerChange(_message.Message):
    __slots__ = ("path", "kind")
    PATH_FIELD_NUMBER: _ClassVar[int]
    KIND_FIELD_NUMBER: _ClassVar[int]
    path: str
    kind: ChangeKind
    def __init__(self, path: _Optional[str] = ..., kind: _Optional[_Union[ChangeKind, str]] = ...) -> None: ...

class DiffContainerRequest(_message.Message):
    __slots__ = ("container",)
    CONTAINER_FIELD_NUMBER: _ClassVar[int]
    container: str
    def __init__(self, container: _Optional[str] = ...) -> None: ...

class DiffContainerResponse(_message.Message):
    __slots__ = ("changes",)
    CHANGES_FIELD_NUMBER: _ClassVar[int]
    changes: _containers.RepeatedCompositeFieldContainer[ContainerChange]
    def __init__(self, changes: _Optional[_Iterable[_Union[ContainerChange, _Mapping]]] = ...) -> None: ...

class CommitContainerRequest(_message.Message):
    __slots__ = ("container", "reference", "changes", "comment", "author", "pause")
    CONTAINER_FIELD_NUMBER: _ClassVar[int]
    REFERENCE_FIELD_NUMBER: _ClassVar[int]
    CHANGES_FIELD_NUMBER: _ClassVar[int]
    COMMENT_FIELD_NUMBER: _ClassVar[int]
    AUTHOR_FIELD_NUMBER: _ClassVar[int]
    PAUSE_FIELD_NUMBER: _ClassVar[int]
    container: str
    reference: str
    changes: _containers.RepeatedScalarFieldContainer[str]
    comment: str
    author: str
    pause: bool
    def __init__(self, container: _Optional[str] = ..., reference: _Optional[str] = ..., changes: _Optional[_Iterable[str]] = ..., comment: _Optional[str] = ..., author: _Optional[str] = ..., pause: _Optional[bool] = ...) -> None: ...

class CommitContainerResponse(_message.Message):
    __slots__ = ("id",)
    ID_FIELD_NUMBER: _ClassVar[int]
    id: str
    def __init__(self, id: _Optional[str] = ...) -> None: ...

class PruneContainersRequest(_message.Message):
    __slots__ = ("filters",)
    FILTERS_FIELD_NUMBER: _ClassVar[int]
    filters: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, filters: _Optional[_Iterable[str]] = ...) -> None: ...

class PruneContainersResponse(_message.Message):
    __slots__ = ("deleted", "space_reclaimed")
    DELETED_FIELD_NUMBER: _ClassVar[int]
    SPACE_RECLAIMED_FIELD_NUMBER: _ClassVar[int]
    deleted: _containers.RepeatedScalarFieldContainer[str]
    space_reclaimed: int
    def __init__(self, deleted: _Optional[_Iterable[str]] = ..., space_reclaimed: _Optional[int] = ...) -> None: ...

class UpdateContainerRequest(_message.Message):
    __slots__ = ("container", "resources", "restart_policy")
    CONTAINER_FIELD_NUMBER: _ClassVar[int]
    RESOURCES_FIELD_NUMBER: _ClassVar[int]
    RESTART_POLICY_FIELD_NUMBER: _ClassVar[int]
    container: str
    resources: Resources
    restart_policy: RestartPolicy
    def __init__(self, container: _Optional[str] = ..., resources: _Optional[_Union[Resources, _Mapping]] = ..., restart_policy: _Optional[_Union[RestartPolicy, _Mapping]] = ...) -> None: ...

class UpdateContainerResponse(_message.Message):
    __slots__ = ("warnings",)
    WARNINGS_FIELD_NUMBER: _ClassVar[int]
    warnings: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, warnings: _Optional[_Iterable[str]] = ...) -> None: ...

class PauseContainerRequest(_message.Message):
    __slots__ = ("container",)
    CONTAINER_FIELD_NUMBER: _ClassVar[int]
    container: str
    def __init__(self, container: _Optional[str] = ...) -> None: ...

class PauseContainerResponse(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class UnpauseContainerRequest(_message.Message):
    __slots__ = ("container",)
    CONTAINER_FIELD_NUMBER: _ClassVar[int]
    container: str
    def __init__(self, container: _Optional[str] = ...) -> None: ...

class UnpauseContainerResponse(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class TopContainerRequest(_message.Message):
    __slots__ = ("container", "ps_args")
    CONTAINER_FIELD_NUMBER: _ClassVar[int]
    PS_ARGS_FIELD_NUMBER: _ClassVar[int]
    container: str
    ps_args: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, container: _Optional[str] = ..., ps_args: _Optional[_Iterable[str]] = ...) -> None: ...

class TopProcess(_message.Message):
    __slots__ = ("fields",)
    FIELDS_FIELD_NUMBER: _ClassVar[int]
    fields: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, fields: _Optional[_Iterable[str]] = ...) -> None: ...

class TopContainerResponse(_message.Message):
    __slots__ = ("titles", "processes")
    TITLES_FIELD_NUMBER: _ClassVar[int]
    PROCESSES_FIELD_NUMBER: _ClassVar[int]
    titles: _containers.RepeatedScalarFieldContainer[str]
    processes: _containers.RepeatedCompositeFieldContainer[TopProcess]
    def __init__(self, titles: _Optional[_Iterable[str]] = ..., processes: _Optional[_Iterable[_Union[TopProcess, _Mapping]]] = ...) -> None: ...

class StatsRequest(_message.Message):
    __slots__ = ("containers", "all", "stream")
    CONTAINERS_FIELD_NUMBER: _ClassVar[int]
    ALL_FIELD_NUMBER: _ClassVar[int]
    STREAM_FIELD_NUMBER: _ClassVar[int]
    containers: _containers.RepeatedScalarFieldContainer[str]
    all: bool
    stream: bool
    def __init__(self, containers: _Optional[_Iterable[str]] = ..., all: _Optional[bool] = ..., stream: _Optional[bool] = ...) -> None: ...

class NetworkStats(_message.Message):
    __slots__ = ("name", "rx_bytes", "tx_bytes", "rx_packets", "tx_packets")
    NAME_FIELD_NUMBER: _ClassVar[int]
    RX_BYTES_FIELD_NUMBER: _ClassVar[int]
    TX_BYTES_FIELD_NUMBER: _ClassVar[int]
    RX_PACKETS_FIELD_NUMBER: _ClassVar[int]
    TX_PACKETS_FIELD_NUMBER: _ClassVar[int]
    name: str
    rx_bytes: int
    tx_bytes: int
    rx_packets: int
    tx_packets: int
    def __init__(self, name: _Optional[str] = ..., rx_bytes: _Optional[int] = ..., tx_bytes: _Optional[int] = ..., rx_packets: _Optional[int] = ..., tx_packets: _Optional[int] = ...) -> None: ...

class ContainerStats(_message.Message):
    __slots__ = ("id", "name", "running", "read", "cpu_usage_ns", "system_cpu_ns", "online_cpus", "pre_cpu_usage_ns", "pre_system_cpu_ns", "memory_usage", "memory_limit", "memory_inactive_file", "networks", "block_read_bytes", "block_write_bytes", "pids_current", "pids_limit")
    ID_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    RUNNING_FIELD_NUMBER: _ClassVar[int]
    READ_FIELD_NUMBER: _ClassVar[int]
    CPU_USAGE_NS_FIELD_NUMBER: _ClassVar[int]
    SYSTEM_CPU_NS_FIELD_NUMBER: _ClassVar[int]
    ONLINE_CPUS_FIELD_NUMBER: _ClassVar[int]
    PRE_CPU_USAGE_NS_FIELD_NUMBER: _ClassVar[int]
    PRE_SYSTEM_CPU_NS_FIELD_NUMBER: _ClassVar[int]
    MEMORY_USAGE_FIELD_NUMBER: _ClassVar[int]
    MEMORY_LIMIT_FIELD_NUMBER: _ClassVar[int]
    MEMORY_INACTIVE_FILE_FIELD_NUMBER: _ClassVar[int]
    NETWORKS_FIELD_NUMBER: _ClassVar[int]
    BLOCK_READ_BYTES_FIELD_NUMBER: _ClassVar[int]
    BLOCK_WRITE_BYTES_FIELD_NUMBER: _ClassVar[int]
    PIDS_CURRENT_FIELD_NUMBER: _ClassVar[int]
    PIDS_LIMIT_FIELD_NUMBER: _ClassVar[int]
    id: str
    name: str
    running: bool
    read: _timestamp_pb2.Timestamp
    cpu_usage_ns: int
    system_cpu_ns: int
    online_cpus: int
    pre_cpu_usage_ns: int
    pre_system_cpu_ns: int
    memory_usage: int
    memory_limit: int
    memory_inactive_file: int
    networks: _containers.RepeatedCompositeFieldContainer[NetworkStats]
    block_read_bytes: int
    block_write_bytes: int
    pids_current: int
    pids_limit: int
    def __init__(self, id: _Optional[str] = ..., name: _Optional[str] = ..., running: _Optional[bool] = ..., read: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., cpu_usage_ns: _Optional[int] = ..., system_cpu_ns: _Optional[int] = ..., online_cpus: _Optional[int] = ..., pre_cpu_usage_ns: _Optional[int] = ..., pre_system_cpu_ns: _Optional[int] = ..., memory_usage: _Optional[int] = ..., memory_limit: _Optional[int] = ..., memory_inactive_file: _Optional[int] = ..., networks: _Optional[_Iterable[_Union[NetworkStats, _Mapping]]] = ..., block_read_bytes: _Optional[int] = ..., block_write_bytes: _Optional[int] = ..., pids_current: _Optional[int] = ..., pids_limit: _Optional[int] = ...) -> None: ...

class StatsResponse(_message.Message):
    __slots__ = ("stats",)
    STATS_FIELD_NUMBER: _ClassVar[int]
    stats: _containers.RepeatedCompositeFieldContainer[ContainerStats]
    def __init__(self, stats: _Optional[_Iterable[_Union[ContainerStats, _Mapping]]] = ...) -> None: ...

class ResizeRequest(_message.Message):
    __slots__ = ("container", "exec_id", "height", "width")
    CONTAINER_FIELD_NUMBER: _ClassVar[int]
    EXEC_ID_FIELD_NUMBER: _ClassVar[int]
    HEIGHT_FIELD_NUMBER: _ClassVar[int]
    WIDTH_FIELD_NUMBER: _ClassVar[int]
    container: str
    exec_id: str
    height: int
    width: int
    def __init__(self, container: _Optional[str] = ..., exec_id: _Optional[str] = ..., height: _Optional[int] = ..., width: _Optional[int] = ...) -> None: ...

class ResizeResponse(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class RenameContainerRequest(_message.Message):
    __slots__ = ("container", "name")
    CONTAINER_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    container: str
    name: str
    def __init__(self, container: _Optional[str] = ..., name: _Optional[str] = ...) -> None: ...

class RenameContainerResponse(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...
