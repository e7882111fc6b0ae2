import datetime

from google.protobuf import timestamp_pb2 as _timestamp_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class VersionRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class VersionResponse(_message.Message):
    __slots__ = ("version", "api_version", "python_version", "os", "arch", "kernel_version", "git_commit")
    VERSION_FIELD_NUMBER: _ClassVar[int]
    API_VERSION_FIELD_NUMBER: _ClassVar[int]
    PYTHON_VERSION_FIELD_NUMBER: _ClassVar[int]
    OS_FIELD_NUMBER: _ClassVar[int]
    ARCH_FIELD_NUMBER: _ClassVar[int]
    KERNEL_VERSION_FIELD_NUMBER: _ClassVar[int]
    GIT_COMMIT_FIELD_NUMBER: _ClassVar[int]
    version: str
    api_version: str
    python_version: str
    os: str
    arch: str
    kernel_version: str
    git_commit: str
    def __init__(self, version: _Optional[str] = ..., api_version: _Optional[str] = ..., python_version: _Optional[str] = ..., os: _Optional[str] = ..., arch: _Optional[str] = ..., kernel_version: _Optional[str] = ..., git_commit: _Optional[str] = ...) -> None: ...

class InfoRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class InfoResponse(_message.Message):
    __slots__ = ("containers", "containers_running", "containers_paused", "containers_stopped", "images", "server_version", "root_dir", "run_root", "storage_driver", "cgroup_version", "kernel_version", "operating_system", "arch", "ncpu", "mem_total", "name", "last_event_seq", "started_at")
    CONTAINERS_FIELD_NUMBER: _ClassVar[int]
    CONTAINERS_RUNNING_FIELD_NUMBER: _ClassVar[int]
    CONTAINERS_PAUSED_FIELD_NUMBER: _ClassVar[int]
    CONTAINERS_STOPPED_FIELD_NUMBER: _ClassVar[int]
    IMAGES_FIELD_NUMBER: _ClassVar[int]
    SERVER_VERSION_FIELD_NUMBER: _ClassVar[int]
    ROOT_DIR_FIELD_NUMBER: _ClassVar[int]
    RUN_ROOT_FIELD_NUMBER: _ClassVar[int]
    STORAGE_DRIVER_FIELD_NUMBER: _ClassVar[int]
    CGROUP_VERSION_FIELD_NUMBER: _ClassVar[int]
    KERNEL_VERSION_FIELD_NUMBER: _ClassVar[int]
    OPERATING_SYSTEM_FIELD_NUMBER: _ClassVar[int]
    ARCH_FIELD_NUMBER: _ClassVar[int]
    NCPU_FIELD_NUMBER: _ClassVar[int]
    MEM_TOTAL_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    LAST_EVENT_SEQ_FIELD_NUMBER: _ClassVar[int]
    STARTED_AT_FIELD_NUMBER: _ClassVar[int]
    containers: int
    containers_running: int
    containers_paused: int
    containers_stopped: int
    images: int
    server_version: str
    root_dir: str
    run_root: str
    storage_driver: str
    cgroup_version: str
    kernel_version: str
    operating_system: str
    arch: str
    ncpu: int
    mem_total: int
    name: str
    last_event_seq: int
    started_at: _timestamp_pb2.Timestamp
    def __init__(self, containers: _Optional[int] = ..., containers_running: _Optional[int] = ..., containers_paused: _Optional[int] = ..., containers_stopped: _Optional[int] = ..., images: _Optional[int] = ..., server_version: _Optional[str] = ..., root_dir: _Optional[str] = ..., run_root: _Optional[str] = ..., storage_driver: _Optional[str] = ..., cgroup_version: _Optional[str] = ..., kernel_version: _Optional[str] = ..., operating_system: _Optional[str] = ..., arch: _Optional[str] = ..., ncpu: _Optional[int] = ..., mem_total: _Optional[int] = ..., name: _Optional[str] = ..., last_event_seq: _Optional[int] = ..., started_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class PingRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class PingResponse(_message.Message):
    __slots__ = ("api_version",)
    API_VERSION_FIELD_NUMBER: _ClassVar[int]
    api_version: str
    def __init__(self, api_version: _Optional[str] = ...) -> None: ...

class DiskUsageRequest(_message.Message):
    __slots__ = ("types", "verbose")
    TYPES_FIELD_NUMBER: _ClassVar[int]
    VERBOSE_FIELD_NUMBER: _ClassVar[int]
    types: _containers.RepeatedScalarFieldContainer[str]
    verbose: bool
    def __init__(self, types: _Optional[_Iterable[str]] = ..., verbose: _Optional[bool] = ...) -> None: ...

class ImageUsage(_message.Message):
    __slots__ = ("image_id", "size", "shared_size", "containers")
    IMAGE_ID_FIELD_NUMBER: _ClassVar[int]
    SIZE_FIELD_NUMBER: _ClassVar[int]
    SHARED_SIZE_FIELD_NUMBER: _ClassVar[int]
    CONTAINERS_FIELD_NUMBER: _ClassVar[int]
    image_id: str
    size: int
    shared_size: int
    containers: int
    def __init__(self, image_id: _Optional[str] = ..., size: _Optional[int] = ..., shared_size: _Optional[int] = ..., containers: _Optional[int] = ...) -> None: ...

class ContainerUsage(_message.Message):
    __slots__ = ("container_id", "size_rw", "size_root_fs")
    CONTAINER_ID_FIELD_NUMBER: _ClassVar[int]
    SIZE_RW_FIELD_NUMBER: _ClassVar[int]
    SIZE_ROOT_FS_FIELD_NUMBER: _ClassVar[int]
    container_id: str
    size_rw: int
    size_root_fs: int
    def __init__(self, container_id: _Optional[str] = ..., size_rw: _Optional[int] = ..., size_root_fs: _Optional[int] = ...) -> None: ...

class VolumeUsage(_message.Message):
    __slots__ = ("name", "size", "ref_count")
    NAME_FIELD_NUMBER: _ClassVar[int]
    SIZE_FIELD_NUMBER: _ClassVar[int]
    REF_COUNT_FIELD_NUMBER: _ClassVar[int]
    name: str
    size: int
    ref_count: int
    def __init__(self, name: _Optional[str] = ..., size: _Optional[int] = ..., ref_count: _Optional[int] = ...) -> None: ...

class UsageSummary(_message.Message):
    __slots__ = ("total", "active", "size", "reclaimable")
    TOTAL_FIELD_NUMBER: _ClassVar[int]
    ACTIVE_FIELD_NUMBER: _ClassVar[int]
    SIZE_FIELD_NUMBER: _ClassVar[int]
    RECLAIMABLE_FIELD_NUMBER: _ClassVar[int]
    total: int
    active: int
    size: int
    reclaimable: int
    def __init__(self, total: _Optional[int] = ..., active: _Optional[int] = ..., size: _Optional[int] = ..., reclaimable: _Optional[int] = ...) -> None: ...

class DiskUsageResponse(_message.Message):
    __slots__ = ("images", "containers", "volumes", "image_usage", "container_usage", "volume_usage")
    IMAGES_FIELD_NUMBER: _ClassVar[int]
    CONTAINERS_FIELD_NUMBER: _ClassVar[int]
    VOLUMES_FIELD_NUMBER: _ClassVar[int]
    IMAGE_USAGE_FIELD_NUMBER: _ClassVar[int]
    CONTAINER_USAGE_FIELD_NUMBER: _ClassVar[int]
    VOLUME_USAGE_FIELD_NUMBER: _ClassVar[int]
    images: UsageSummary
    containers: UsageSummary
    volumes: UsageSummary
    image_usage: _containers.RepeatedCompositeFieldContainer[ImageUsage]
    container_usage: _containers.RepeatedCompositeFieldContainer[ContainerUsage]
    volume_usage: _containers.RepeatedCompositeFieldContainer[VolumeUsage]
    def __init__(self, images: _Optional[_Union[UsageSummary, _Mapping]] = ..., containers: _Optional[_Union[UsageSummary, _Mapping]] = ..., volumes: _Optional[_Union[UsageSummary, _Mapping]] = ..., image_usage: _Optional[_Iterable[_Union[ImageUsage, _Mapping]]] = ..., container_usage: _Optional[_Iterable[_Union[ContainerUsage, _Mapping]]] = ..., volume_usage: _Optional[_Iterable[_Union[VolumeUsage, _Mapping]]] = ...) -> None: ...
