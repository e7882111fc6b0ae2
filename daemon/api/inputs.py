"""The check every request gets at the gRPC edge, whatever the RPC: no NUL bytes, no
oversized strings, no numbers or times the rest of palletd cannot hold.

Owns: walking any request message by its protobuf descriptor (nested messages, repeated
fields, maps and their keys) and refusing, with InvalidArgument naming the field's path
(`config.env[2]`, `config.labels["a"]`, `open.working_dir`), the first of:

* a NUL byte in a string: the kernel ends names, paths, arguments and environment
  variables at the first NUL, so such a string cannot mean what it says (Python refuses
  it too, with "embedded null byte", at the first system call);
* a string longer than `MAX_STRING_BYTES` (UTF-8 bytes), Linux's limit for one argument
  or environment variable (MAX_ARG_STRLEN, 128 KiB, less its NUL);
* a `google.protobuf.Timestamp` that nanoseconds since 1970 in a signed 64-bit integer,
  how palletd keeps and stores every time, cannot hold (1677-09-21 to 2262-04-11; the
  proto allows years 1 to 9999), or whose nanos are not 0 to 999,999,999;
* an unsigned 64-bit number above 2**63 - 1: SQLite integers are signed 64-bit, and no
  count, size or sequence number of pallet comes near;
* bytes that do not parse as the request (a string that is not UTF-8, say): the server
  decodes with `tolerant`, which hands such a request on as `Undecodable`, so the check
  answers INVALID_ARGUMENT where grpc would answer UNKNOWN.

`tolerant` also hands an upload's chunk (a PutArchive, Import or Load message that is its
`chunk` field alone) on unparsed, as an `UploadChunk` viewing grpc's bytes: bytes need no
check, and protobuf's parse and field read were two copies of every byte uploaded.

It knows no service: a new service, message or field is checked with no change here.
Must not: judge what a value means (a label's size, a timeout's range, a name's form):
the domain does that, so every front end (gRPC, the Docker REST gateway) gets the same rules.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any, TypeVar

from google.protobuf.descriptor import FieldDescriptor
from google.protobuf.message import DecodeError, Message

from pallet.v1.errors import InvalidArgument

_TYPE_BYTES = FieldDescriptor.TYPE_BYTES

__all__ = [
    "MAX_STRING_BYTES",
    "MAX_UINT64",
    "TIME_MAX_NS",
    "TIME_MIN_NS",
    "Undecodable",
    "UploadChunk",
    "check_request",
    "checked_stream",
    "tolerant",
]

#: Linux's MAX_ARG_STRLEN (32 pages of 4 KiB) less the NUL that ends the string: the
#: longest argument or environment entry exec accepts, and the longest string of any field.
MAX_STRING_BYTES = 32 * 4096 - 1
#: The largest unsigned 64-bit value accepted: SQLite's (signed) INTEGER maximum.
MAX_UINT64 = 2**63 - 1
#: The times palletd holds, in nanoseconds since 1970 (an int64: 1677-09-21 .. 2262-04-11).
TIME_MIN_NS = -(2**63)
TIME_MAX_NS = 2**63 - 1

_TIMESTAMP = "google.protobuf.Timestamp"
# FieldDescriptor type numbers (descriptor.proto's FieldDescriptorProto.Type).
_TYPE_STRING = 9
_TYPE_MESSAGE = 11
_TYPE_UINT64 = 4
_TYPE_FIXED64 = 6
_UNSIGNED_64 = (_TYPE_UINT64, _TYPE_FIXED64)
# How much of a map key a field path shows: enough to recognise it.
_KEY_SHOWN = 40

Msg = TypeVar("Msg", bound=Message)


@dataclass(frozen=True, slots=True)
class Undecodable:
    """A request whose bytes did not parse: what `tolerant` hands on instead of it."""

    type_name: str  # the message type it should have been
    reason: str


@dataclass(frozen=True, slots=True)
class UploadChunk:
    """An upload message (a cp's, an import's or a load's) that holds nothing but its
    bytes field, as received and not parsed: `data` is a view into grpc's message bytes.
    Parsing it with protobuf copied the megabytes twice more (into the message, then out
    of it when the field was read), a fifth of palletd's CPU for a cp into a container."""

    field: str  # the bytes field's name ("chunk")
    data: memoryview


def tolerant(
    decode: Callable[[bytes], Any], type_name: str, descriptor: Any = None
) -> Callable[[bytes], Any]:
    """`decode`, but bytes it cannot parse become `Undecodable` (grpc would answer UNKNOWN
    with an "Unexpected DecodeError" before any handler saw the call). A message of the
    type `descriptor` describes that is a lone bytes field of its only oneof (an upload's
    chunk) becomes an `UploadChunk`, unparsed."""
    lone = _lone_bytes_tags(descriptor) if descriptor is not None else _NO_TAGS

    def decode_or_mark(data: bytes) -> Any:
        if lone and data:
            field = lone.get(data[0])
            if field is not None:
                view = _lone_field(data)
                if view is not None:
                    return UploadChunk(field, view)
        try:
            return decode(data)
        except DecodeError as exc:
            return Undecodable(type_name, str(exc))

    return decode_or_mark


_NO_TAGS: dict[int, str] = {}
#: Message type -> what `_lone_bytes_tags` found (the interceptor asks on every call).
_LONE_TAGS: dict[str, dict[int, str]] = {}


def _lone_bytes_tags(descriptor: Any) -> dict[int, str]:
    """{the one-byte wire tag of its `chunk`: "chunk"} for an upload request (a type
    whose every field is in its only oneof, which has a bytes `chunk` and an `end`
    UploadEnd: PutArchive's, Import's, Load's); else {} (attach's and exec's stdin too:
    their handlers read messages, not bytes)."""
    found = _LONE_TAGS.get(descriptor.full_name)
    if found is None:
        found = _LONE_TAGS[descriptor.full_name] = _find_lone_bytes_tags(descriptor)
    return found


def _find_lone_bytes_tags(descriptor: Any) -> dict[int, str]:
    oneofs = descriptor.oneofs
    if len(oneofs) != 1 or any(f.containing_oneof is None for f in descriptor.fields):
        return _NO_TAGS
    fields = {f.name: f for f in oneofs[0].fields}
    chunk, end = fields.get("chunk"), fields.get("end")
    if (chunk is None or chunk.type != _TYPE_BYTES or chunk.number >= 16  # a one-byte tag
            or end is None or end.message_type is None or end.message_type.name != "UploadEnd"):
        return _NO_TAGS
    return {(chunk.number << 3) | 2: chunk.name}  # wire type 2: length-delimited


def _lone_field(data: bytes) -> memoryview | None:
    """The value of the length-delimited field whose tag is data[0], when it is all the
    message holds (anything else, a repeated field or trailing bytes, gets protobuf's
    parse)."""
    size = shift = 0
    pos = 1
    while pos < len(data) and pos <= 10:
        byte = data[pos]
        size |= (byte & 0x7F) << shift
        pos += 1
        if not byte & 0x80:
            return memoryview(data)[pos:] if pos + size == len(data) else None
        shift += 7
    return None


def check_request(message: Message | Undecodable | UploadChunk) -> None:
    """Refuse `message` (InvalidArgument naming the field) if any value in it is hostile."""
    if isinstance(message, UploadChunk):
        return  # bytes cannot be hostile
    if isinstance(message, Undecodable):
        raise InvalidArgument(
            f"the request is not a valid {message.type_name}: {message.reason} (every "
            "string must be UTF-8)"
        )
    if _only_bytes(message):
        return
    _check_message(message, "")


#: Message type -> its oneof when every field of it is in that one oneof (the upload
#: requests: header, chunk or end), else None.
_SOLE_ONEOF: dict[str, Any] = {}


def _only_bytes(message: Message) -> bool:
    """True when all that is set is one bytes field of the type's only oneof (an upload's
    chunk): bytes cannot be hostile, and reading the field to look (ListFields) would copy
    megabytes per message of a cp, import or load."""
    descriptor = message.DESCRIPTOR
    name = descriptor.full_name
    if name not in _SOLE_ONEOF:
        oneofs = descriptor.oneofs
        sole = oneofs[0] if len(oneofs) == 1 else None
        if sole is not None and any(
            f.containing_oneof is None or f.containing_oneof.name != sole.name for f in descriptor.fields
        ):
            sole = None
        _SOLE_ONEOF[name] = sole
    sole = _SOLE_ONEOF[name]
    if sole is None:
        return False
    which = message.WhichOneof(sole.name)
    return which is not None and descriptor.fields_by_name[which].type == _TYPE_BYTES


async def checked_stream(messages: AsyncIterator[Msg]) -> AsyncIterator[Msg]:
    """The messages of a client stream, each checked as it arrives."""
    async for message in messages:
        check_request(message)
        yield message


def _join(prefix: str, name: str) -> str:
    return f"{prefix}.{name}" if prefix else name


def _key(key: object) -> str:
    if isinstance(key, str):
        shown = key if len(key) <= _KEY_SHOWN else key[:_KEY_SHOWN] + "..."
        return json.dumps(shown)
    return str(key)


def _check_message(message: Message, path: str) -> None:
    if message.DESCRIPTOR.full_name == _TIMESTAMP:
        _check_timestamp(message, path)
        return
    for field, value in message.ListFields():
        where = _join(path, field.name)
        entry = field.message_type
        if entry is not None and entry.GetOptions().map_entry:
            key_field = entry.fields_by_name["key"]
            value_field = entry.fields_by_name["value"]
            for key, item in value.items():
                shown = f"{where}[{_key(key)}]"
                if key_field.type == _TYPE_STRING:
                    _check_string(key, f"the key of {shown}")
                _check_value(value_field, item, shown)
        elif field.is_repeated:
            for index, item in enumerate(value):
                _check_value(field, item, f"{where}[{index}]")
        else:
            _check_value(field, value, where)


def _check_value(field: Any, value: Any, path: str) -> None:
    kind = field.type
    if kind == _TYPE_STRING:
        _check_string(value, path)
    elif kind == _TYPE_MESSAGE:
        _check_message(value, path)
    elif kind in _UNSIGNED_64 and value > MAX_UINT64:
        raise InvalidArgument(
            f"{path} is {value}: the largest number pallet accepts there is {MAX_UINT64}"
        )


def _check_string(value: str, path: str) -> None:
    nul = value.find("\0")
    if nul >= 0:
        raise InvalidArgument(
            f"{path} contains a NUL byte (\\0) at character {nul}: no name, path, "
            "argument or other string pallet takes may hold one"
        )
    # Only a string that may be too long is encoded to measure it (UTF-8: <= 4 bytes each).
    if len(value) * 4 > MAX_STRING_BYTES:
        size = len(value) if len(value) > MAX_STRING_BYTES else len(value.encode())
        if size > MAX_STRING_BYTES:
            raise InvalidArgument(
                f"{path} is {size} bytes long: a string pallet takes is at most "
                f"{MAX_STRING_BYTES} bytes (Linux's limit for one argument, MAX_ARG_STRLEN)"
            )


def _check_timestamp(ts: Any, path: str) -> None:
    seconds, nanos = ts.seconds, ts.nanos
    if not (0 <= nanos < 10**9 and TIME_MIN_NS <= seconds * 10**9 + nanos <= TIME_MAX_NS):
        raise InvalidArgument(
            f"{path} is not a valid time (seconds {seconds}, nanos {nanos}): use a time "
            "from 1677-09-21 to 2262-04-11 (pallet keeps times as nanoseconds since 1970 in "
            "64 bits), with nanos from 0 to 999999999"
        )

