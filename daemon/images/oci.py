"""OCI (and Docker schema 2) image documents: media types, descriptors, configs, manifests.

Owns: building and parsing image configs, manifests and indexes as JSON bytes, converting
the runtime part of a config to and from `ImageConfig`, RFC 3339 times, and the host
platform in OCI terms. Must not: read or write files.

Every parse error is the input's fault and says which document and field is wrong.
"""

from __future__ import annotations

import json
import platform
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

from pallet.v1.errors import InvalidArgument
from pallet.daemon.images.model import HealthConfig, ImageConfig

OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
OCI_LAYER = "application/vnd.oci.image.layer.v1.tar"
OCI_LAYER_GZIP = "application/vnd.oci.image.layer.v1.tar+gzip"
DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
DOCKER_MANIFEST_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"
DOCKER_CONFIG = "application/vnd.docker.container.image.v1+json"

MANIFEST_TYPES = frozenset({OCI_MANIFEST, DOCKER_MANIFEST})
INDEX_TYPES = frozenset({OCI_INDEX, DOCKER_MANIFEST_LIST})
CONFIG_TYPES = frozenset({OCI_CONFIG, DOCKER_CONFIG})
LAYER_TYPES = frozenset(
    {
        OCI_LAYER,
        OCI_LAYER_GZIP,
        "application/vnd.oci.image.layer.v1.tar+zstd",
        "application/vnd.oci.image.layer.nondistributable.v1.tar",
        "application/vnd.oci.image.layer.nondistributable.v1.tar+gzip",
        "application/vnd.docker.image.rootfs.diff.tar",
        "application/vnd.docker.image.rootfs.diff.tar.gzip",
        "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip",
    }
)

ANNOTATION_REF_NAME = "org.opencontainers.image.ref.name"
ANNOTATION_CONTAINERD_NAME = "io.containerd.image.name"

_DIGEST = re.compile(r"sha256:[0-9a-f]{64}")
_ARCHITECTURES = {
    "x86_64": "amd64",
    "amd64": "amd64",
    "aarch64": "arm64",
    "arm64": "arm64",
    "armv7l": "arm",
    "armv6l": "arm",
    "i386": "386",
    "i686": "386",
    "ppc64le": "ppc64le",
    "s390x": "s390x",
    "riscv64": "riscv64",
}


def host_architecture() -> str:
    """This machine's architecture as OCI (GOARCH) spells it."""
    machine = platform.machine().lower()
    return _ARCHITECTURES.get(machine, machine)


def canonical_json(value: object) -> bytes:
    """Deterministic JSON: the same document always hashes to the same digest."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def format_time(ns: int) -> str:
    """RFC 3339 in UTC with nanoseconds, as Go writes it."""
    seconds, nanos = divmod(ns, 1_000_000_000)
    base = datetime.fromtimestamp(seconds, tz=timezone.utc).strftime("%Y-%m-%dT%H:%M:%S")
    fraction = f".{nanos:09d}".rstrip("0").rstrip(".")
    return f"{base}{fraction}Z"


_TIME = re.compile(
    r"(\d{4}-\d{2}-\d{2})[Tt ](\d{2}:\d{2}:\d{2})(?:\.(\d+))?(Z|z|[+-]\d{2}:\d{2})"
)


def parse_time(text: str) -> int:
    """RFC 3339 (any precision, any offset) to ns since the epoch."""
    match = _TIME.fullmatch(text.strip())
    if match is None:
        raise InvalidArgument(f"image config 'created' is not an RFC 3339 time: {text!r}")
    day, clock, fraction, offset = match.groups()
    offset = "+00:00" if offset in ("Z", "z") else offset
    moment = datetime.fromisoformat(f"{day}T{clock}{offset}")
    nanos = int((fraction or "0")[:9].ljust(9, "0"))
    return int(moment.timestamp()) * 1_000_000_000 + nanos


@dataclass(frozen=True, slots=True)
class Descriptor:
    """A pointer to a blob: what it is, its digest and its size."""

    media_type: str
    digest: str
    size: int
    annotations: Mapping[str, str] = field(default_factory=dict)
    platform: Mapping[str, str] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"mediaType": self.media_type, "digest": self.digest, "size": self.size}
        if self.annotations:
            out["annotations"] = dict(self.annotations)
        return out


@dataclass(frozen=True, slots=True)
class ParsedConfig:
    """What palletd keeps from an image config."""

    created_ns: int
    architecture: str
    os: str
    author: str
    comment: str
    config: ImageConfig
    diff_ids: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class Manifest:
    config: Descriptor
    layers: tuple[Descriptor, ...]
    # As the manifest says, or OCI's when it says nothing (both kinds parse the same).
    media_type: str = OCI_MANIFEST


def _load_json(data: bytes, what: str) -> dict[str, Any]:
    try:
        value = json.loads(data)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise InvalidArgument(f"{what} is not valid JSON: {exc}") from None
    if not isinstance(value, dict):
        raise InvalidArgument(f"{what} must be a JSON object")
    return value


def _strings(value: Any, what: str) -> tuple[str, ...]:
    if value is None:
        return ()
    if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
        raise InvalidArgument(f"{what} must be a list of strings")
    return tuple(value)


def _string(value: Any, what: str) -> str:
    if value is None:
        return ""
    if not isinstance(value, str):
        raise InvalidArgument(f"{what} must be a string")
    return value


def _keys(value: Any, what: str) -> tuple[str, ...]:
    if value is None:
        return ()
    if not isinstance(value, dict):
        raise InvalidArgument(f"{what} must be an object")
    return tuple(sorted(str(key) for key in value))


def _string_map(value: Any, what: str) -> dict[str, str]:
    if value is None:
        return {}
    if not isinstance(value, dict) or not all(isinstance(v, str) for v in value.values()):
        raise InvalidArgument(f"{what} must be an object of strings")
    return {str(key): val for key, val in value.items()}


def _int(value: Any, what: str) -> int:
    if value is None:
        return 0
    if not isinstance(value, int) or isinstance(value, bool):
        raise InvalidArgument(f"{what} must be an integer")
    return value


def healthcheck_from_json(value: Any, what: str) -> HealthConfig | None:
    """docker's `Healthcheck` object (durations in ns); None when absent. Its values are
    judged where a container is made from it (`containers.healthcheck`), as docker does."""
    if value is None:
        return None
    if not isinstance(value, dict):
        raise InvalidArgument(f"{what} must be an object")
    return HealthConfig(
        test=_strings(value.get("Test"), f"{what} Test"),
        interval_ns=_int(value.get("Interval"), f"{what} Interval"),
        timeout_ns=_int(value.get("Timeout"), f"{what} Timeout"),
        start_period_ns=_int(value.get("StartPeriod"), f"{what} StartPeriod"),
        start_interval_ns=_int(value.get("StartInterval"), f"{what} StartInterval"),
        retries=_int(value.get("Retries"), f"{what} Retries"),
    )


def healthcheck_to_json(h: HealthConfig) -> dict[str, Any]:
    """docker's `Healthcheck` object: Test always, the rest when set (docker's omitempty)."""
    out: dict[str, Any] = {"Test": list(h.test)}
    for key, value in (("Interval", h.interval_ns), ("Timeout", h.timeout_ns),
                       ("StartPeriod", h.start_period_ns),
                       ("StartInterval", h.start_interval_ns), ("Retries", h.retries)):
        if value:
            out[key] = value
    return out


def runtime_config_from_json(value: Any, what: str = "image config") -> ImageConfig:
    """The `config` object of an image config (Docker's capitalised keys)."""
    if value is None:
        return ImageConfig()
    if not isinstance(value, dict):
        raise InvalidArgument(f"{what} 'config' must be an object")
    return ImageConfig(
        entrypoint=_strings(value.get("Entrypoint"), f"{what} Entrypoint"),
        cmd=_strings(value.get("Cmd"), f"{what} Cmd"),
        env=_strings(value.get("Env"), f"{what} Env"),
        working_dir=_string(value.get("WorkingDir"), f"{what} WorkingDir"),
        user=_string(value.get("User"), f"{what} User"),
        labels=_string_map(value.get("Labels"), f"{what} Labels"),
        stop_signal=_string(value.get("StopSignal"), f"{what} StopSignal"),
        exposed_ports=_keys(value.get("ExposedPorts"), f"{what} ExposedPorts"),
        volumes=_keys(value.get("Volumes"), f"{what} Volumes"),
        on_build=_strings(value.get("OnBuild"), f"{what} OnBuild"),
        shell=_strings(value.get("Shell"), f"{what} Shell"),
        healthcheck=healthcheck_from_json(value.get("Healthcheck"), f"{what} Healthcheck"),
    )


def runtime_config_to_json(config: ImageConfig) -> dict[str, Any]:
    out: dict[str, Any] = {}
    if config.entrypoint:
        out["Entrypoint"] = list(config.entrypoint)
    if config.cmd:
        out["Cmd"] = list(config.cmd)
    if config.env:
        out["Env"] = list(config.env)
    if config.working_dir:
        out["WorkingDir"] = config.working_dir
    if config.user:
        out["User"] = config.user
    if config.labels:
        out["Labels"] = dict(config.labels)
    if config.stop_signal:
        out["StopSignal"] = config.stop_signal
    if config.exposed_ports:
        out["ExposedPorts"] = {port: {} for port in config.exposed_ports}
    if config.volumes:
        out["Volumes"] = {volume: {} for volume in config.volumes}
    if config.on_build:
        out["OnBuild"] = list(config.on_build)
    if config.shell:
        out["Shell"] = list(config.shell)
    if config.healthcheck is not None:
        out["Healthcheck"] = healthcheck_to_json(config.healthcheck)
    return out


def parse_config(data: bytes) -> ParsedConfig:
    doc = _load_json(data, "image config")
    rootfs = doc.get("rootfs")
    if not isinstance(rootfs, dict) or rootfs.get("type") != "layers":
        raise InvalidArgument("image config has no rootfs of type 'layers'")
    diff_ids = _strings(rootfs.get("diff_ids"), "image config rootfs.diff_ids")
    if not diff_ids:
        # A container needs at least one lowerdir to stack its rootfs on.
        raise InvalidArgument("image config lists no layers: an image needs a root filesystem")
    for diff_id in diff_ids:
        if not _DIGEST.fullmatch(diff_id):
            raise InvalidArgument(f"image config lists an invalid diff id {diff_id!r}")
    created = doc.get("created")
    return ParsedConfig(
        created_ns=parse_time(created) if isinstance(created, str) and created else 0,
        architecture=_string(doc.get("architecture"), "image config architecture"),
        os=_string(doc.get("os"), "image config os") or "linux",
        author=_string(doc.get("author"), "image config author"),
        comment=_string(doc.get("comment"), "image config comment"),
        config=runtime_config_from_json(doc.get("config")),
        diff_ids=diff_ids,
    )


def build_config(
    *,
    created_ns: int,
    config: ImageConfig,
    diff_ids: Sequence[str],
    comment: str = "",
    created_by: str = "",
) -> bytes:
    created = format_time(created_ns)
    history: dict[str, Any] = {"created": created, "created_by": created_by}
    if comment:
        history["comment"] = comment
    doc: dict[str, Any] = {
        "created": created,
        "architecture": host_architecture(),
        "os": "linux",
        "config": runtime_config_to_json(config),
        "rootfs": {"type": "layers", "diff_ids": list(diff_ids)},
        "history": [history],
    }
    if comment:
        doc["comment"] = comment  # Docker keeps the import message here too
    return canonical_json(doc)


def scratch_config(created_ns: int = 0, history: Sequence[str] = ()) -> bytes:
    """The config a build's first layer on `scratch` is a child of: no layers, and a
    history entry without a layer for each step before it."""
    created = format_time(created_ns)
    return canonical_json({
        "architecture": host_architecture(),
        "os": "linux",
        "config": {},
        "rootfs": {"type": "layers", "diff_ids": []},
        "history": [{"created": created, "created_by": c, "empty_layer": True} for c in history],
    })


def build_child_config(
    base: bytes,
    *,
    created_ns: int,
    config: ImageConfig,
    diff_id: str,
    comment: str = "",
    author: str = "",
    created_by: str = "",
    container_id: str = "",
) -> bytes:
    """The config of an image made from `base`'s (a stored image config) and one more
    layer (`diff_id`; "" for none: a history entry with `empty_layer`), as docker's
    commit makes it: the base's history and layers kept, the runtime config replaced."""
    doc = _load_json(base, "base image config")
    rootfs = doc.get("rootfs")
    diff_ids = list(_strings(rootfs.get("diff_ids"), "base image config rootfs.diff_ids")) if isinstance(rootfs, dict) else []
    history = doc.get("history")
    history = [h for h in history if isinstance(h, dict)] if isinstance(history, list) else []
    created = format_time(created_ns)
    entry: dict[str, Any] = {"created": created, "created_by": created_by}
    if author:
        entry["author"] = author
    if comment:
        entry["comment"] = comment
    if diff_id:
        diff_ids.append(diff_id)
    else:
        entry["empty_layer"] = True
    child: dict[str, Any] = {
        "created": created,
        "architecture": _string(doc.get("architecture"), "base image config architecture") or host_architecture(),
        "os": _string(doc.get("os"), "base image config os") or "linux",
        "config": runtime_config_to_json(config),
        "rootfs": {"type": "layers", "diff_ids": diff_ids},
        "history": [*history, entry],
    }
    for key in ("variant", "os.version"):
        if isinstance(doc.get(key), str):
            child[key] = doc[key]
    if author:
        child["author"] = author
    if comment:
        child["comment"] = comment
    if container_id:
        child["container"] = container_id  # docker's: the container it was made from
    return canonical_json(child)


#: Docker's layer media types and the OCI ones for the same bytes (a manifest built here
#: is OCI, and lists its layers as OCI does).
OCI_LAYER_TYPE = {
    "application/vnd.docker.image.rootfs.diff.tar": OCI_LAYER,
    "application/vnd.docker.image.rootfs.diff.tar.gzip": OCI_LAYER_GZIP,
}


def build_manifest(config: Descriptor, layers: Sequence[Descriptor]) -> bytes:
    return canonical_json(
        {
            "schemaVersion": 2,
            "mediaType": OCI_MANIFEST,
            "config": config.to_json(),
            "layers": [layer.to_json() for layer in layers],
        }
    )


def parse_descriptor(value: Any, what: str) -> Descriptor:
    if not isinstance(value, dict):
        raise InvalidArgument(f"{what} must be a descriptor object")
    media_type = _string(value.get("mediaType"), f"{what} mediaType")
    digest = _string(value.get("digest"), f"{what} digest")
    size = value.get("size")
    if not _DIGEST.fullmatch(digest):
        raise InvalidArgument(f"{what} has digest {digest!r}; only sha256 digests are supported")
    if not isinstance(size, int) or isinstance(size, bool) or size < 0:
        raise InvalidArgument(f"{what} has no valid size")
    return Descriptor(
        media_type=media_type,
        digest=digest,
        size=size,
        annotations=_string_map(value.get("annotations"), f"{what} annotations"),
        platform=_string_map(
            {k: v for k, v in (value.get("platform") or {}).items() if isinstance(v, str)}
            if isinstance(value.get("platform"), dict)
            else None,
            f"{what} platform",
        ),
    )


def parse_manifest(data: bytes, what: str) -> Manifest:
    doc = _load_json(data, what)
    media_type = doc.get("mediaType")
    if media_type is not None and media_type not in MANIFEST_TYPES:
        raise InvalidArgument(f"{what} has media type {media_type!r}, not an image manifest")
    config = parse_descriptor(doc.get("config"), f"{what} config")
    if config.media_type and config.media_type not in CONFIG_TYPES:
        raise InvalidArgument(f"{what} config has unsupported media type {config.media_type!r}")
    raw_layers = doc.get("layers")
    if not isinstance(raw_layers, list):
        raise InvalidArgument(f"{what} has no layers list")
    layers = tuple(parse_descriptor(item, f"{what} layer {i}") for i, item in enumerate(raw_layers))
    for layer in layers:
        if layer.media_type not in LAYER_TYPES:
            raise InvalidArgument(f"{what} has a layer of unsupported media type {layer.media_type!r}")
    return Manifest(config, layers, media_type or OCI_MANIFEST)


def parse_index(data: bytes, what: str) -> tuple[Descriptor, ...]:
    doc = _load_json(data, what)
    media_type = doc.get("mediaType")
    if media_type is not None and media_type not in INDEX_TYPES:
        raise InvalidArgument(f"{what} has media type {media_type!r}, not an image index")
    manifests = doc.get("manifests")
    if not isinstance(manifests, list):
        raise InvalidArgument(f"{what} has no manifests list")
    return tuple(parse_descriptor(item, f"{what} entry {i}") for i, item in enumerate(manifests))
