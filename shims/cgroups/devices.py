"""The device cgroup: which device nodes a container's processes may open or make.

Owns: applying the spec's `linux.device_cgroup` rules to the container's cgroup before any
of its processes is in it: on v1, `devices.deny` / `devices.allow` of the devices
controller; on v2, where there is no such file, a small eBPF program of type
BPF_PROG_TYPE_CGROUP_DEVICE (built here, as runc's devicefilter does) loaded with
bpf(BPF_PROG_LOAD) and attached to the cgroup with bpf(BPF_PROG_ATTACH); the cgroup holds
it until it is removed. Must not: decide the rules (the daemon's, Docker's allow-list) or
import anything heavy: ctypes and struct only, in the shim.

The kernel asks, for every open or mknod of a device node, whether (type, major, minor,
access) is allowed; every rule here allows, and anything no rule allows is refused (EPERM).
"""

from __future__ import annotations

import ctypes
import os
import struct
from collections.abc import Sequence

from pallet.shim.api.spec import DeviceRule
from pallet.shim.cgroups import Cgroup, V1Cgroup, V2Cgroup, fs
from pallet.shim.syscalls import Syscalls

_BPF_PROG_LOAD = 5
_BPF_PROG_ATTACH = 8
_BPF_PROG_TYPE_CGROUP_DEVICE = 15
_BPF_CGROUP_DEVICE = 6
_BPF_F_ALLOW_MULTI = 2
# struct bpf_cgroup_dev_ctx: access_type (access << 16 | type), major, minor (u32 each).
_DEV_BLOCK, _DEV_CHAR = 1, 2
_ACC_MKNOD, _ACC_READ, _ACC_WRITE = 1, 2, 4
_ACCESS = {"m": _ACC_MKNOD, "r": _ACC_READ, "w": _ACC_WRITE}


def _insn(code: int, dst: int = 0, src: int = 0, off: int = 0, imm: int = 0) -> bytes:
    return struct.pack("<BBhi", code, (src << 4) | dst, off, imm)


_LDX_W = 0x61  # dst = *(u32 *)(src + off)
_AND_K = 0x57  # dst &= imm (64-bit ALU)
_RSH_K = 0x77  # dst >>= imm
_MOV_X = 0xBF  # dst = src
_MOV_K = 0xB7  # dst = imm
_JNE_K = 0x55  # if dst != imm: pc += off
_JNE_X = 0x5D  # if dst != src: pc += off
_EXIT = 0x95


def is_allow_all(rules: Sequence[DeviceRule]) -> bool:
    return any(r.allow and r.type == "a" and r.major < 0 and r.minor < 0 and set(r.access) >= set("rwm")
               for r in rules)


def device_program(rules: Sequence[DeviceRule]) -> bytes:
    """The eBPF program that returns 1 (allow) when one of `rules` matches, else 0."""
    prog = [
        _insn(_LDX_W, 2, 1, 0), _insn(_AND_K, 2, imm=0xFFFF),  # r2 = type
        _insn(_LDX_W, 3, 1, 0), _insn(_RSH_K, 3, imm=16),  # r3 = access asked
        _insn(_LDX_W, 4, 1, 4),  # r4 = major
        _insn(_LDX_W, 5, 1, 8),  # r5 = minor
    ]
    for rule in rules:
        if not rule.allow:
            continue  # the default is deny: a deny rule adds nothing here
        block: list[bytes] = []
        checks: list[tuple[int, int, int]] = []  # (code, dst, imm or src) jumping to next
        if rule.type in ("c", "b"):
            checks.append((_JNE_K, 2, _DEV_CHAR if rule.type == "c" else _DEV_BLOCK))
        mask = sum(_ACCESS[ch] for ch in set(rule.access))
        if mask != _ACC_MKNOD | _ACC_READ | _ACC_WRITE:
            checks.append((-1, 0, mask))  # the access asked must be within the rule's
        if rule.major >= 0:
            checks.append((_JNE_K, 4, rule.major))
        if rule.minor >= 0:
            checks.append((_JNE_K, 5, rule.minor))
        # Each check's length, so each knows how far the end of the block is.
        sizes = [3 if code == -1 else 1 for code, _, _ in checks]
        total = sum(sizes) + 2  # + "r0 = 1; exit"
        done = 0
        for (code, dst, value), size in zip(checks, sizes):
            done += size
            skip = total - done
            if code == -1:
                block += [_insn(_MOV_X, 1, 3), _insn(_AND_K, 1, imm=value), _insn(_JNE_X, 1, 3, skip)]
            else:
                block.append(_insn(code, dst, off=skip, imm=value))
        block += [_insn(_MOV_K, 0, imm=1), _insn(_EXIT)]
        prog += block
    prog += [_insn(_MOV_K, 0, imm=0), _insn(_EXIT)]
    return b"".join(prog)


class _ProgLoad(ctypes.Structure):
    _fields_ = [
        ("prog_type", ctypes.c_uint32), ("insn_cnt", ctypes.c_uint32),
        ("insns", ctypes.c_uint64), ("license", ctypes.c_uint64),
        ("log_level", ctypes.c_uint32), ("log_size", ctypes.c_uint32),
        ("log_buf", ctypes.c_uint64), ("kern_version", ctypes.c_uint32),
        ("prog_flags", ctypes.c_uint32), ("pad", ctypes.c_char * 64),
    ]


class _ProgAttach(ctypes.Structure):
    _fields_ = [
        ("target_fd", ctypes.c_uint32), ("attach_bpf_fd", ctypes.c_uint32),
        ("attach_type", ctypes.c_uint32), ("attach_flags", ctypes.c_uint32),
        ("pad", ctypes.c_char * 64),
    ]


def _bpf(sys: Syscalls, command: int, attr: ctypes.Structure, what: str) -> int:
    try:
        return sys.bpf(command, ctypes.addressof(attr), ctypes.sizeof(attr))
    except OSError as exc:
        raise fs.CgroupError(f"cgroup: {what}: {exc.strerror or exc}") from None


def apply(cgroup: Cgroup, rules: Sequence[DeviceRule], sys: Syscalls) -> None:
    """The rules on the container's cgroup, by what the host has; none: left alone."""
    if not rules:
        return
    if isinstance(cgroup, V2Cgroup):
        attach_v2(cgroup.path, rules, sys)
    elif isinstance(cgroup, V1Cgroup):
        apply_v1(cgroup.controller_path("devices"), rules)


def attach_v2(cgroup_dir: str, rules: Sequence[DeviceRule], sys: Syscalls) -> None:
    """Load the rules' program and attach it to `cgroup_dir` (nothing for allow-all)."""
    if is_allow_all(rules):
        return
    code = device_program(rules)
    insns = ctypes.create_string_buffer(code, len(code))
    license = ctypes.create_string_buffer(b"Apache-2.0")
    load = _ProgLoad(
        prog_type=_BPF_PROG_TYPE_CGROUP_DEVICE, insn_cnt=len(code) // 8,
        insns=ctypes.addressof(insns), license=ctypes.addressof(license),
    )
    try:
        # Without the verifier's log: it is long (a line per instruction and state) and
        # a buffer it overflows fails the load with ENOSPC.
        prog_fd = _bpf(sys, _BPF_PROG_LOAD, load, "loading the device cgroup program")
    except fs.CgroupError as exc:
        raise fs.CgroupError(f"{exc} {_verifier_says(sys, load)}".strip()) from None
    try:
        dir_fd = os.open(cgroup_dir, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        try:
            attach = _ProgAttach(target_fd=dir_fd, attach_bpf_fd=prog_fd,
                                 attach_type=_BPF_CGROUP_DEVICE, attach_flags=_BPF_F_ALLOW_MULTI)
            _bpf(sys, _BPF_PROG_ATTACH, attach, f"attaching the device program to {cgroup_dir}")
        finally:
            os.close(dir_fd)
    finally:
        os.close(prog_fd)  # the cgroup holds the program now


def _verifier_says(sys: Syscalls, load: _ProgLoad) -> str:
    """The last line of the verifier's log for a load that failed (loaded again, with it)."""
    log = ctypes.create_string_buffer(1 << 20)
    load.log_level, load.log_size, load.log_buf = 1, len(log), ctypes.addressof(log)
    try:
        os.close(sys.bpf(_BPF_PROG_LOAD, ctypes.addressof(load), ctypes.sizeof(load)))
    except OSError:
        pass
    lines = log.value.decode(errors="replace").strip().splitlines()
    return f"(verifier: {lines[-1]})" if lines else ""


def _v1_line(rule: DeviceRule) -> str:
    major = "*" if rule.major < 0 else str(rule.major)
    minor = "*" if rule.minor < 0 else str(rule.minor)
    return "a" if rule.type == "a" else f"{rule.type} {major}:{minor} {rule.access}"


def apply_v1(devices_dir: str, rules: Sequence[DeviceRule]) -> None:
    """Deny all, then allow each rule (a new v1 cgroup starts with its parent's list)."""
    if is_allow_all(rules):
        fs.write(os.path.join(devices_dir, "devices.allow"), "a", "allow every device in")
        return
    fs.write(os.path.join(devices_dir, "devices.deny"), "a", "deny every device in")
    for rule in rules:
        name = "devices.allow" if rule.allow else "devices.deny"
        fs.write(os.path.join(devices_dir, name), _v1_line(rule), f"set {name} of")
