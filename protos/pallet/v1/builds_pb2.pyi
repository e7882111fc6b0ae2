from pallet.v1 import images_pb2 as _images_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class BuildStepState(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    BUILD_STEP_STATE_UNSPECIFIED: _ClassVar[BuildStepState]
    BUILD_STEP_STATE_STARTED: _ClassVar[BuildStepState]
    BUILD_STEP_STATE_CACHED: _ClassVar[BuildStepState]
    BUILD_STEP_STATE_OUTPUT: _ClassVar[BuildStepState]
    BUILD_STEP_STATE_DONE: _ClassVar[BuildStepState]
    BUILD_STEP_STATE_INFO: _ClassVar[BuildStepState]
BUILD_STEP_STATE_UNSPECIFIED: BuildStepState
BUILD_STEP_STATE_STARTED: BuildStepState
BUILD_STEP_STATE_CACHED: BuildStepState
BUILD_STEP_STATE_OUTPUT: BuildStepState
BUILD_STEP_STATE_DONE: BuildStepState
BUILD_STEP_STATE_INFO: BuildStepState

class BuildArg(_message.Message):
    __slots__ = ("name", "value")
    NAME_FIELD_NUMBER: _ClassVar[int]
    VALUE_FIELD_NUMBER: _ClassVar[int]
    name: str
    value: str
    def __init__(self, name: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...

class BuildOptions(_message.Message):
    __slots__ = ("dockerfile", "tags", "build_args", "labels", "target", "no_cache", "pull", "network", "platform", "registry_auth")
    class LabelsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    class RegistryAuthEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: _images_pb2.RegistryAuth
        def __init__(self, key: _Optional[str] = ..., value: _Optional[_Union[_images_pb2.RegistryAuth, _Mapping]] = ...) -> None: ...
    DOCKERFILE_FIELD_NUMBER: _ClassVar[int]
    TAGS_FIELD_NUMBER: _ClassVar[int]
    BUILD_ARGS_FIELD_NUMBER: _ClassVar[int]
    LABELS_FIELD_NUMBER: _ClassVar[int]
    TARGET_FIELD_NUMBER: _ClassVar[int]
    NO_CACHE_FIELD_NUMBER: _ClassVar[int]
    PULL_FIELD_NUMBER: _ClassVar[int]
    NETWORK_FIELD_NUMBER: _ClassVar[int]
    PLATFORM_FIELD_NUMBER: _ClassVar[int]
    REGISTRY_AUTH_FIELD_NUMBER: _ClassVar[int]
    dockerfile: str
    tags: _containers.RepeatedScalarFieldContainer[str]
    build_args: _containers.RepeatedCompositeFieldContainer[BuildArg]
    labels: _containers.ScalarMap[str, str]
    target: str
    no_cache: bool
    pull: bool
    network: str
    platform: str
    registry_auth: _containers.MessageMap[str, _images_pb2.RegistryAuth]
    def __init__(self, dockerfile: _Optional[str] = ..., tags: _Optional[_Iterable[str]] = ..., build_args: _Optional[_Iterable[_Union[BuildArg, _Mapping]]] = ..., labels: _Optional[_Mapping[str, str]] = ..., target: _Optional[str] = ..., no_cache: _Optional[bool] = ..., pull: _Optional[bool] = ..., network: _Optional[str] = ..., platform: _Optional[str] = ..., registry_auth: _Optional[_Mapping[str, _images_pb2.RegistryAuth]] = ...) -> None: ...

class BuildRequest(_message.Message):
    __slots__ = ("options", "chunk", "end")
    OPTIONS_FIELD_NUMBER: _ClassVar[int]
    CHUNK_FIELD_NUMBER: _ClassVar[int]
    END_FIELD_NUMBER: _ClassVar[int]
    options: BuildOptions
    chunk: bytes
    end: _images_pb2.UploadEnd
    def __init__(self, options: _Optional[_Union[BuildOptions, _Mapping]] = ..., chunk: _Optional[bytes] = ..., end: _Optional[_Union[_images_pb2.UploadEnd, _Mapping]] = ...) -> None: ...

class BuildProgress(_message.Message):
    __slots__ = ("state", "step", "total", "stage", "text", "data", "stream", "image_id")
    STATE_FIELD_NUMBER: _ClassVar[int]
    STEP_FIELD_NUMBER: _ClassVar[int]
    TOTAL_FIELD_NUMBER: _ClassVar[int]
    STAGE_FIELD_NUMBER: _ClassVar[int]
    TEXT_FIELD_NUMBER: _ClassVar[int]
    DATA_FIELD_NUMBER: _ClassVar[int]
    STREAM_FIELD_NUMBER: _ClassVar[int]
    IMAGE_ID_FIELD_NUMBER: _ClassVar[int]
    state: BuildStepState
    step: int
    total: int
    stage: str
    text: str
    data: bytes
    stream: int
    image_id: str
    def __init__(self, state: _Optional[_Union[BuildStepState, str]] = ..., step: _Optional[int] = ..., total: _Optional[int] = ..., stage: _Optional[str] = ..., text: _Optional[str] = ..., data: _Optional[bytes] = ..., stream: _Optional[int] = ..., image_id: _Optional[str] = ...) -> None: ...

class BuildResult(_message.Message):
    __slots__ = ("image_id", "tags", "steps", "cached_steps")
    IMAGE_ID_FIELD_NUMBER: _ClassVar[int]
    TAGS_FIELD_NUMBER: _ClassVar[int]
    STEPS_FIELD_NUMBER: _ClassVar[int]
    CACHED_STEPS_FIELD_NUMBER: _ClassVar[int]
    image_id: str
    tags: _containers.RepeatedScalarFieldContainer[str]
    steps: int
    cached_steps: int
    def __init__(self, image_id: _Optional[str] = ..., tags: _Optional[_Iterable[str]] = ..., steps: _Optional[int] = ..., cached_steps: _Optional[int] = ...) -> None: ...

class BuildResponse(_message.Message):
    __slots__ = ("progress", "result")
    PROGRESS_FIELD_NUMBER: _ClassVar[int]
    RESULT_FIELD_NUMBER: _ClassVar[int]
    progress: BuildProgress
    result: BuildResult
    def __init__(self, progress: _Optional[_Union[BuildProgress, _Mapping]] = ..., result: _Optional[_Union[BuildResult, _Mapping]] = ...) -> None: ...
