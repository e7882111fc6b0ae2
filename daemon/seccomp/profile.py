"""Seccomp profiles in Docker's JSON format, parsed and checked.

Owns: `Profile` and its parts, `parse` (Docker's JSON: defaultAction, defaultErrnoRet,
architectures or archMap, syscalls[] with names/action/errnoRet/args/includes/excludes),
the action and comparison names, and `rules_for` (the rules that apply to a container
with these capabilities on this machine, as Docker's `setupSeccomp` picks them). Must not:
call libseccomp (`compile.py` does) or read files.

A seccomp filter is a small BPF program the kernel runs on every system call a process
makes; it answers allow, fail with an errno, or kill. Docker's profile lists what is
allowed; everything else gets `defaultAction`.

As in Go's JSON decoding, keys pallet does not know ("comment", "listenerPath") are
ignored; a known key of the wrong type is an error that names it.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from typing import Any

from pallet.v1.errors import InvalidArgument

# Docker's action names -> libseccomp's action value (an errno or trace code is or'ed in).
ACTIONS: dict[str, int] = {
    "SCMP_ACT_KILL": 0x00000000,
    "SCMP_ACT_KILL_THREAD": 0x00000000,
    "SCMP_ACT_KILL_PROCESS": 0x80000000,
    "SCMP_ACT_TRAP": 0x00030000,
    "SCMP_ACT_ERRNO": 0x00050000,
    "SCMP_ACT_TRACE": 0x7FF00000,
    "SCMP_ACT_LOG": 0x7FFC0000,
    "SCMP_ACT_ALLOW": 0x7FFF0000,
}
# The actions that carry a 16-bit value (errnoRet).
_WITH_VALUE = ("SCMP_ACT_ERRNO", "SCMP_ACT_TRACE")
# Docker's comparison names -> libseccomp's enum scmp_compare.
COMPARISONS: dict[str, int] = {
    "SCMP_CMP_NE": 1,
    "SCMP_CMP_LT": 2,
    "SCMP_CMP_LE": 3,
    "SCMP_CMP_EQ": 4,
    "SCMP_CMP_GE": 5,
    "SCMP_CMP_GT": 6,
    "SCMP_CMP_MASKED_EQ": 7,
}
EPERM = 1
# uname's machine -> the architecture name Docker's includes/excludes "arches" use (Go's).
_GO_ARCH = {
    "x86_64": "amd64", "aarch64": "arm64", "i686": "386", "i386": "386", "armv7l": "arm",
    "ppc64le": "ppc64le", "s390x": "s390x", "riscv64": "riscv64", "mips64": "mips64",
}


@dataclass(frozen=True, slots=True)
class Arg:
    """One condition on an argument: `arg[index] OP value` (MASKED_EQ: `arg & value == value_two`)."""

    index: int
    value: int
    value_two: int
    op: int


@dataclass(frozen=True, slots=True)
class Filter:
    """Docker's includes/excludes: capabilities, architectures, a minimum kernel."""

    caps: tuple[str, ...] = ()
    arches: tuple[str, ...] = ()
    min_kernel: tuple[int, ...] = ()


@dataclass(frozen=True, slots=True)
class Rule:
    names: tuple[str, ...]
    action: int  # libseccomp's value, errno included
    args: tuple[Arg, ...]
    includes: Filter
    excludes: Filter


@dataclass(frozen=True, slots=True)
class Profile:
    default_action: int
    # SCMP_ARCH_* names: the architectures the filter covers besides the native one.
    architectures: tuple[str, ...]
    # native SCMP_ARCH_* name -> its sub-architectures (Docker's archMap).
    arch_map: dict[str, tuple[str, ...]]
    rules: tuple[Rule, ...]


def _bad(what: str) -> InvalidArgument:
    return InvalidArgument(
        f"invalid seccomp profile: {what}: fix the profile (Docker's JSON format), or run "
        "with --security-opt seccomp=unconfined"
    )


def _get(obj: dict[str, Any], key: str, kind: type, where: str, default: Any) -> Any:
    value = obj.get(key, default)
    if value is None:
        return default
    if (kind is int and isinstance(value, bool)) or not isinstance(value, kind):
        raise _bad(f"{where}{key} must be {_kind_name(kind)}")
    return value


_KIND_NAMES: dict[type, str] = {str: "a string", int: "a number", list: "a list", dict: "an object"}


def _kind_name(kind: type) -> str:
    return _KIND_NAMES.get(kind, "a value")


def _action(name: Any, errno_ret: Any, where: str, default_errno: int) -> int:
    if not isinstance(name, str) or name not in ACTIONS:
        raise _bad(f"{where}unknown action {name!r} (use one of {', '.join(ACTIONS)})")
    value = ACTIONS[name]
    if name in _WITH_VALUE:
        code = default_errno if errno_ret is None else errno_ret
        if isinstance(code, bool) or not isinstance(code, int) or not 0 <= code <= 0xFFFF:
            raise _bad(f"{where}errnoRet must be a number from 0 to 65535")
        value |= code
    return value


def _filter(raw: Any, where: str) -> Filter:
    if raw is None:
        return Filter()
    if not isinstance(raw, dict):
        raise _bad(f"{where} must be an object")
    caps = _get(raw, "caps", list, f"{where}.", [])
    arches = _get(raw, "arches", list, f"{where}.", [])
    if not all(isinstance(c, str) for c in caps + arches):
        raise _bad(f"{where}: caps and arches are lists of strings")
    kernel = _get(raw, "minKernel", str, f"{where}.", "")
    try:
        min_kernel = _kernel_version(kernel) if kernel else ()
    except ValueError:
        raise _bad(f"{where}.minKernel {kernel!r} is not a kernel version such as 4.8") from None
    return Filter(
        caps=tuple("CAP_" + c.upper().removeprefix("CAP_") for c in caps),
        arches=tuple(arches),
        min_kernel=min_kernel,
    )


def _kernel_version(text: str) -> tuple[int, ...]:
    """"6.1.0-18-amd64" -> (6, 1, 0); ValueError when it does not start with numbers."""
    parts = text.split("-", 1)[0].split(".")[:3]
    return tuple(int(p) for p in parts)


def parse(text: str | bytes) -> Profile:
    """A Docker seccomp profile; InvalidArgument says what is wrong and where."""
    try:
        raw = json.loads(text)
    except ValueError as exc:
        raise _bad(f"not JSON ({exc})") from None
    if not isinstance(raw, dict):
        raise _bad("the profile must be a JSON object")
    default_errno = _get(raw, "defaultErrnoRet", int, "", EPERM)
    if "defaultAction" not in raw:
        raise _bad("defaultAction is missing")
    default_action = _action(raw["defaultAction"], default_errno, "defaultAction: ", EPERM)
    architectures = _get(raw, "architectures", list, "", [])
    arch_map: dict[str, tuple[str, ...]] = {}
    for i, entry in enumerate(_get(raw, "archMap", list, "", [])):
        if not isinstance(entry, dict):
            raise _bad(f"archMap[{i}] must be an object")
        arch = _get(entry, "architecture", str, f"archMap[{i}].", "")
        subs = _get(entry, "subArchitectures", list, f"archMap[{i}].", [])
        arch_map[arch] = tuple(str(s) for s in subs)
    rules = []
    for i, entry in enumerate(_get(raw, "syscalls", list, "", [])):
        where = f"syscalls[{i}]"
        if not isinstance(entry, dict):
            raise _bad(f"{where} must be an object")
        names = _get(entry, "names", list, f"{where}.", [])
        name = _get(entry, "name", str, f"{where}.", "")  # the old single-name form
        if name:
            names = [*names, name]
        if not names or not all(isinstance(n, str) and n for n in names):
            raise _bad(f"{where}.names must list system call names")
        action = _action(entry.get("action"), entry.get("errnoRet"), f"{where}: ", default_errno)
        args = []
        for j, arg in enumerate(_get(entry, "args", list, f"{where}.", [])):
            aw = f"{where}.args[{j}]."
            if not isinstance(arg, dict):
                raise _bad(f"{aw[:-1]} must be an object")
            index = _get(arg, "index", int, aw, -1)
            if not 0 <= index <= 5:
                raise _bad(f"{aw}index must be 0 to 5 (a system call has six arguments)")
            op = arg.get("op")
            if op not in COMPARISONS:
                raise _bad(f"{aw}unknown op {op!r} (use one of {', '.join(COMPARISONS)})")
            value = _get(arg, "value", int, aw, 0)
            value_two = _get(arg, "valueTwo", int, aw, 0)
            if not (0 <= value < 1 << 64 and 0 <= value_two < 1 << 64):
                raise _bad(f"{aw}value and valueTwo must be 64-bit unsigned numbers")
            args.append(Arg(index, value, value_two, COMPARISONS[op]))
        rules.append(Rule(
            names=tuple(names), action=action, args=tuple(args),
            includes=_filter(entry.get("includes"), f"{where}.includes"),
            excludes=_filter(entry.get("excludes"), f"{where}.excludes"),
        ))
    return Profile(
        default_action=default_action,
        architectures=tuple(str(a) for a in architectures),
        arch_map=arch_map,
        rules=tuple(rules),
    )


def native_go_arch(machine: str | None = None) -> str:
    machine = machine or os.uname().machine
    return _GO_ARCH.get(machine, machine)


def kernel_release() -> tuple[int, ...]:
    release = os.uname().release
    try:
        return _kernel_version(release)
    except ValueError:
        # "6.1.0+": the numbers before what is not one
        digits = []
        for part in release.split(".")[:3]:
            num = "".join(ch for ch in part if ch.isdigit())
            if not num:
                break
            digits.append(int(num))
        return tuple(digits)


def rules_for(
    profile: Profile, caps: frozenset[str], arch: str, kernel: tuple[int, ...]
) -> list[Rule]:
    """The rules that apply: every includes met (all its caps held, the arch listed, the
    kernel new enough), no excludes hit (any cap held, the arch listed)."""
    kept = []
    for rule in profile.rules:
        inc, exc = rule.includes, rule.excludes
        if inc.caps and not all(c in caps for c in inc.caps):
            continue
        if inc.arches and arch not in inc.arches:
            continue
        if inc.min_kernel and kernel and kernel < inc.min_kernel:
            continue
        if exc.caps and any(c in caps for c in exc.caps):
            continue
        if exc.arches and arch in exc.arches:
            continue
        if exc.min_kernel and kernel and kernel >= exc.min_kernel:
            continue
        kept.append(rule)
    return kept
