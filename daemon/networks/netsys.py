"""The few raw kernel calls under `pallet.daemon.networks.kernel`, each in the calling
thread's network namespace.

Owns: the namespace syscalls Python 3.11 lacks (unshare, setns, a bind mount, a detaching
unmount; through ctypes), interface flags and indexes by ioctl, and `Rtnl`, a bare
rtnetlink socket that sends one request and reads its ack, for the hot path of an attach.
Must not: decide anything, or be used from any thread but the network kernel's worker
(whose namespace these calls act on).

Why a bare socket beside pyroute2: pyroute2 still builds and encodes every message, but
its asyncio request machinery costs ~0.5 ms of Python per request; send + recv of the same
bytes costs ~0.05 ms, and an attach makes four requests within a 10 ms budget.
"""

from __future__ import annotations

import ctypes
import fcntl
import os
import socket
import struct
from typing import Any

# linux/sched.h, linux/mount.h, linux/if.h, linux/sockios.h, linux/netlink.h
CLONE_NEWNET = 0x40000000
MS_BIND = 0x1000
MNT_DETACH = 0x2
IFF_UP = 0x1
SIOCGIFFLAGS = 0x8913
SIOCSIFFLAGS = 0x8914
IFNAMSIZ = 16
NETLINK_ROUTE = 0
NLMSG_ERROR = 2
NLM_F_REQUEST = 0x1
NLM_F_ACK = 0x4
NLM_F_EXCL = 0x200
NLM_F_CREATE = 0x400
_NLMSGHDR = struct.Struct("=IHHII")  # length, type, flags, sequence, port
_IFREQ_FLAGS = struct.Struct(f"{IFNAMSIZ}sH22x")


class Libc:
    """unshare, setns, mount --bind, umount -l: OSError (with its errno) on failure."""

    def __init__(self) -> None:
        self._libc = ctypes.CDLL(None, use_errno=True)
        self._libc.mount.argtypes = [
            ctypes.c_char_p, ctypes.c_char_p, ctypes.c_char_p, ctypes.c_ulong, ctypes.c_char_p,
        ]

    @staticmethod
    def _check(result: int, what: str) -> None:
        if result < 0:
            err = ctypes.get_errno()
            raise OSError(err, f"{what}: {os.strerror(err)}")

    def unshare(self, flags: int) -> None:
        self._check(self._libc.unshare(ctypes.c_int(flags)), "unshare")

    def setns(self, fd: int, nstype: int) -> None:
        self._check(self._libc.setns(ctypes.c_int(fd), ctypes.c_int(nstype)), "setns")

    def bind_mount(self, source: str, target: str) -> None:
        result = self._libc.mount(source.encode(), target.encode(), None, MS_BIND, None)
        self._check(result, f"bind mount {source} on {target}")

    def umount_detach(self, target: str) -> None:
        result = self._libc.umount2(target.encode(), ctypes.c_int(MNT_DETACH))
        self._check(result, f"umount {target}")


def link_up(ifname: str) -> None:
    """Set IFF_UP on `ifname` (SIOCGIFFLAGS, then SIOCSIFFLAGS)."""
    name = ifname.encode()
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC) as sock:
        flags = _IFREQ_FLAGS.unpack(fcntl.ioctl(sock, SIOCGIFFLAGS, _IFREQ_FLAGS.pack(name, 0)))[1]
        fcntl.ioctl(sock, SIOCSIFFLAGS, _IFREQ_FLAGS.pack(name, flags | IFF_UP))


def if_index(ifname: str) -> int | None:
    """The index of link `ifname`, or None when there is none."""
    try:
        return int(socket.if_nametoindex(ifname))
    except OSError:
        return None


def ack_error(data: bytes, sequence: int) -> int | None:
    """The errno an NLMSG_ERROR for `sequence` in `data` carries (0: success), or None
    when `data` holds no answer to it."""
    offset = 0
    while offset + _NLMSGHDR.size <= len(data):
        length, kind, _flags, seq, _port = _NLMSGHDR.unpack_from(data, offset)
        if length < _NLMSGHDR.size:
            break
        if kind == NLMSG_ERROR and seq == sequence and length >= _NLMSGHDR.size + 4:
            return -int(struct.unpack_from("=i", data, offset + _NLMSGHDR.size)[0])
        offset += (length + 3) & ~3
    return None


class Rtnl:
    """An rtnetlink socket in the netns of the thread that opens it: one request, one ack.

    Joins no multicast group, so nothing but answers to its own requests ever arrives.
    """

    def __init__(self, timeout: float = 10.0) -> None:
        self._sock = socket.socket(
            socket.AF_NETLINK, socket.SOCK_RAW | socket.SOCK_CLOEXEC, NETLINK_ROUTE
        )
        self._sock.settimeout(timeout)
        self._sock.bind((0, 0))
        self._sequence = 0

    def close(self) -> None:
        self._sock.close()

    def __enter__(self) -> Rtnl:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def request(self, msg: Any, msg_type: int, flags: int = NLM_F_REQUEST | NLM_F_ACK) -> None:
        """Send pyroute2 message `msg` as `msg_type`; OSError with the kernel's errno when
        it refuses, TimeoutError when it does not answer."""
        self._sequence += 1
        msg["header"]["type"] = msg_type
        msg["header"]["flags"] = flags | NLM_F_REQUEST | NLM_F_ACK
        msg["header"]["sequence_number"] = self._sequence
        msg.encode()
        self._sock.send(msg.data)
        while True:
            code = ack_error(self._sock.recv(65536), self._sequence)
            if code is None:
                continue  # an answer to an earlier request that timed out
            if code:
                raise OSError(code, os.strerror(code))
            return

