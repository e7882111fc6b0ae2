"""Linux capability names.

Owns: mapping "CAP_CHOWN"-style names to bit numbers. Must not: call the kernel
(`pallet.shim.identity` does), or hold a default set: the daemon's spec names every
capability a process keeps, and none named means none.
"""

from __future__ import annotations

from pallet.v1.errors import InvalidArgument

NUMBERS: dict[str, int] = {
    name: number
    for number, name in enumerate(
        (
            "CHOWN", "DAC_OVERRIDE", "DAC_READ_SEARCH", "FOWNER", "FSETID", "KILL",
            "SETGID", "SETUID", "SETPCAP", "LINUX_IMMUTABLE", "NET_BIND_SERVICE",
            "NET_BROADCAST", "NET_ADMIN", "NET_RAW", "IPC_LOCK", "IPC_OWNER", "SYS_MODULE",
            "SYS_RAWIO", "SYS_CHROOT", "SYS_PTRACE", "SYS_PACCT", "SYS_ADMIN", "SYS_BOOT",
            "SYS_NICE", "SYS_RESOURCE", "SYS_TIME", "SYS_TTY_CONFIG", "MKNOD", "LEASE",
            "AUDIT_WRITE", "AUDIT_CONTROL", "SETFCAP", "MAC_OVERRIDE", "MAC_ADMIN",
            "SYSLOG", "WAKE_ALARM", "BLOCK_SUSPEND", "AUDIT_READ", "PERFMON", "BPF",
            "CHECKPOINT_RESTORE",
        )
    )
}


def mask_of(names: tuple[str, ...]) -> int:
    """The bit mask for `names` ("CAP_CHOWN" or "CHOWN"); unknown names are rejected."""
    mask = 0
    for name in names:
        short = name.upper().removeprefix("CAP_")
        if short not in NUMBERS:
            raise InvalidArgument(f"unknown capability {name!r}")
        mask |= 1 << NUMBERS[short]
    return mask


def last_cap() -> int:
    """The highest capability number this kernel knows (bounding-set drops go up to it)."""
    try:
        with open("/proc/sys/kernel/cap_last_cap", "rb") as f:
            return int(f.read())
    except (OSError, ValueError):
        return max(NUMBERS.values())
