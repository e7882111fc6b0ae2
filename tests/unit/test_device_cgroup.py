"""The device cgroup's rules: the v1 lines, and the v2 eBPF program run by a small
interpreter of the instructions it uses (loading it needs root and a cgroup v2 host:
tests/integration/test_security.py does that in .ci/test-cgroup-v2's VM)."""

from __future__ import annotations

import struct

from pallet.daemon.containers.security import ALLOW_ALL_DEVICES, DEFAULT_DEVICE_RULES
from pallet.shim.api.spec import DeviceRule
from pallet.shim.cgroups import devices

CHAR, BLOCK = 2, 1
MKNOD, READ, WRITE = 1, 2, 4


def run(program: bytes, dev_type: int, access: int, major: int, minor: int) -> int:
    """Execute the program on a bpf_cgroup_dev_ctx; only the opcodes it may hold."""
    ctx = struct.pack("<III", access << 16 | dev_type, major, minor)
    regs = [0] * 11
    insns = [struct.unpack("<BBhi", program[i:i + 8]) for i in range(0, len(program), 8)]
    pc = 0
    for _ in range(10_000):
        code, regs_byte, off, imm = insns[pc]
        dst, src = regs_byte & 0xF, regs_byte >> 4
        pc += 1
        if code == 0x61:
            assert src == 1, "loads only from the context"
            regs[dst] = struct.unpack_from("<I", ctx, off)[0]
        elif code == 0x57:
            regs[dst] &= imm & 0xFFFFFFFFFFFFFFFF
        elif code == 0x77:
            regs[dst] >>= imm
        elif code == 0xBF:
            regs[dst] = regs[src]
        elif code == 0xB7:
            regs[dst] = imm
        elif code == 0x55:
            pc += off if regs[dst] != imm else 0
        elif code == 0x5D:
            pc += off if regs[dst] != regs[src] else 0
        elif code == 0x95:
            return regs[0]
        else:
            raise AssertionError(f"unexpected opcode {code:#x}")
    raise AssertionError("no exit")


def test_the_default_list_allows_dockers_devices_and_mknod_only() -> None:
    prog = devices.device_program(DEFAULT_DEVICE_RULES)
    assert run(prog, CHAR, READ | WRITE, 1, 3) == 1  # /dev/null
    assert run(prog, CHAR, READ, 136, 7) == 1  # a pts
    assert run(prog, CHAR, READ | WRITE, 5, 2) == 1  # ptmx
    assert run(prog, CHAR, READ, 10, 237) == 0  # loop-control
    assert run(prog, BLOCK, READ, 8, 0) == 0  # a disk
    assert run(prog, BLOCK, MKNOD, 8, 0) == 1  # making it is allowed, opening it is not
    assert run(prog, CHAR, MKNOD, 10, 237) == 1


def test_a_device_rule_allows_only_its_access() -> None:
    prog = devices.device_program((DeviceRule(True, "c", 10, 237, "r"),))
    assert run(prog, CHAR, READ, 10, 237) == 1
    assert run(prog, CHAR, READ | WRITE, 10, 237) == 0
    assert run(prog, CHAR, READ, 10, 238) == 0
    assert run(prog, BLOCK, READ, 10, 237) == 0


def test_allow_all_needs_no_program_and_v1_lines() -> None:
    assert devices.is_allow_all(ALLOW_ALL_DEVICES)
    assert not devices.is_allow_all(DEFAULT_DEVICE_RULES)
    lines = [devices._v1_line(r) for r in DEFAULT_DEVICE_RULES]
    assert lines[:3] == ["c *:* m", "b *:* m", "c 1:3 rwm"]
    assert "c 136:* rwm" in lines
