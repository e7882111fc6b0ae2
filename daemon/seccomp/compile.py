"""Seccomp profiles compiled to classic BPF programs, once each, in palletd.

Owns: libseccomp through ctypes (`libseccomp.so.2`: build a filter from a `Profile`'s
rules, export its BPF), `check` (a profile's every system call name known, at create),
and `Programs`, the cache of compiled programs keyed by what they are made from (the
profile's text and the container's capabilities; the arch and kernel are this palletd's):
the default profile for the default capabilities is compiled once per palletd, and a
start only hands the bytes over (the launcher client writes them into the bundle as
`seccomp.bpf`, which each of the container's processes reads in its own child). Must not: install a filter (the shim does, with one seccomp(2)),
or read a profile file (the CLI sends its text, as docker's does).

How the filter gets made, weighed:
  - libseccomp in palletd, bytes to the shim (this): libseccomp knows every arch's
    system call numbers, the x32 and 32-bit x86 entry points, socketcall multiplexing
    and 64-bit argument compares; compiled once, cached, a start pays nothing and the
    shim one system call, and the shim imports nothing new (it must stay small).
  - Debian's python3-seccomp: the same library, but built for Debian's own Python only;
    pallet runs on any Python >= 3.11 (pyenv here).
  - libseccomp in each shim (as runc does in its init): a compile per start and the
    library mapped in every shim, against the start-time and per-shim memory budgets.
  - a BPF generator written in Python: no library, but it would have to redo what
    libseccomp gets right across architectures (the numbers tables, x32's bit, the
    32-bit halves of argument compares); an error there is a hole in the sandbox.

The program is the kernel's `struct sock_filter[]` (8 bytes an instruction) as
seccomp(SECCOMP_SET_MODE_FILTER) takes it; it checks the calling architecture itself.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import errno
import hashlib
import os
import threading
from dataclasses import dataclass
from importlib import resources

from pallet.daemon.seccomp.profile import (
    Arg,
    Profile,
    kernel_release,
    native_go_arch,
    parse,
    rules_for,
)
from pallet.v1.errors import FailedPrecondition, InvalidArgument

DEFAULT_PROFILE_FILE = "profile.json"
# Compiled programs kept (each ~10 KiB of BPF).
MAX_CACHED = 64
# libseccomp's answer for a name it does not know. In pallet's own profile such a name
# (a system call newer than this host's libseccomp) is skipped: it fails with the default
# errno. In a profile the user gives, it is an error: a typo must not silently allow or
# deny something else.
_NR_SCMP_ERROR = -1
_SCMP_FLTATR_CTL_OPTIMIZE = 8  # enum scmp_filter_attr


class _ArgCmp(ctypes.Structure):
    # struct scmp_arg_cmp
    _fields_ = [
        ("arg", ctypes.c_uint),
        ("op", ctypes.c_int),
        ("datum_a", ctypes.c_uint64),
        ("datum_b", ctypes.c_uint64),
    ]


class Libseccomp:
    """The few libseccomp calls a compile needs (ctypes; loaded on first use)."""

    def __init__(self) -> None:
        name = ctypes.util.find_library("seccomp") or "libseccomp.so.2"
        try:
            lib = ctypes.CDLL(name, use_errno=True)
        except OSError as exc:
            raise FailedPrecondition(
                f"cannot load libseccomp ({exc}): install it (Debian: apt-get install "
                "libseccomp2), or run with --security-opt seccomp=unconfined"
            ) from None
        lib.seccomp_init.restype = ctypes.c_void_p
        lib.seccomp_init.argtypes = [ctypes.c_uint32]
        lib.seccomp_release.argtypes = [ctypes.c_void_p]
        lib.seccomp_release.restype = None
        lib.seccomp_arch_add.argtypes = [ctypes.c_void_p, ctypes.c_uint32]
        lib.seccomp_arch_native.restype = ctypes.c_uint32
        lib.seccomp_arch_resolve_name.argtypes = [ctypes.c_char_p]
        lib.seccomp_arch_resolve_name.restype = ctypes.c_uint32
        lib.seccomp_syscall_resolve_name.argtypes = [ctypes.c_char_p]
        lib.seccomp_syscall_resolve_name.restype = ctypes.c_int
        lib.seccomp_rule_add_array.argtypes = [
            ctypes.c_void_p, ctypes.c_uint32, ctypes.c_int, ctypes.c_uint, ctypes.POINTER(_ArgCmp),
        ]
        lib.seccomp_export_bpf.argtypes = [ctypes.c_void_p, ctypes.c_int]
        lib.seccomp_attr_set.argtypes = [ctypes.c_void_p, ctypes.c_int, ctypes.c_uint32]
        self._lib = lib

    def syscall_number(self, name: str) -> int:
        """The number of `name` (negative: a pseudo number, not on this arch); -1: unknown."""
        return int(self._lib.seccomp_syscall_resolve_name(name.encode()))

    def arch(self, name: str) -> int:
        """SCMP_ARCH_X86_64 -> libseccomp's token; 0 when it does not know the name."""
        return int(self._lib.seccomp_arch_resolve_name(name.removeprefix("SCMP_ARCH_").lower().encode()))

    def native_arch(self) -> int:
        return int(self._lib.seccomp_arch_native())

    def compile(self, profile: Profile, caps: frozenset[str], strict: bool) -> bytes:
        lib = self._lib
        ctx = lib.seccomp_init(profile.default_action)
        if not ctx:
            raise InvalidArgument("invalid seccomp profile: libseccomp refused its defaultAction")
        try:
            # A binary tree of the system call numbers, not a list: the kernel runs the
            # filter on every call and at install (it works out which numbers always get
            # the same answer); installing Docker's profile takes ~1 ms, not ~2.3 (here).
            # libseccomp before 2.5 lacks the attribute: then the list it makes is used.
            lib.seccomp_attr_set(ctx, _SCMP_FLTATR_CTL_OPTIMIZE, 2)
            for arch in self._arches(profile):
                rc = lib.seccomp_arch_add(ctx, arch)
                if rc < 0 and -rc != errno.EEXIST:
                    raise InvalidArgument(f"invalid seccomp profile: cannot add architecture {arch:#x}")
            for rule in rules_for(profile, caps, native_go_arch(), kernel_release()):
                if rule.action == profile.default_action:
                    continue  # what happens anyway (libseccomp refuses such a rule)
                for name in rule.names:
                    number = self.syscall_number(name)
                    if number == _NR_SCMP_ERROR:
                        if strict:
                            raise unknown_syscall(name)
                        continue
                    self._add(ctx, rule.action, number, name, rule.args)
            return self._export(ctx)
        finally:
            lib.seccomp_release(ctx)

    def _arches(self, profile: Profile) -> list[int]:
        native = self.native_arch()
        names = list(profile.architectures)
        for arch, subs in profile.arch_map.items():
            if self.arch(arch) == native:
                names += [arch, *subs]
        tokens = []
        for name in names:
            token = self.arch(name)
            if token:  # an architecture this libseccomp does not know cannot run here
                tokens.append(token)
        return tokens

    def _add(self, ctx: int, action: int, number: int, name: str, conds: tuple[Arg, ...]) -> None:
        # As runc: conditions on different arguments are one rule (all must hold); two on
        # the same argument could never both hold, so each of those is a rule of its own.
        indexes = [c.index for c in conds]
        repeated = len(set(indexes)) != len(indexes)
        groups = [[c] for c in conds] if repeated else [list(conds)]
        for group in groups:
            array = (_ArgCmp * max(1, len(group)))(
                *(_ArgCmp(c.index, c.op, c.value, c.value_two) for c in group)
            )
            rc = self._lib.seccomp_rule_add_array(ctx, action, number, len(group), array)
            if rc < 0 and -rc != errno.EEXIST:
                raise InvalidArgument(
                    f"invalid seccomp profile: libseccomp refused the rule for {name}: "
                    f"{os.strerror(-rc)}"
                )

    def _export(self, ctx: int) -> bytes:
        fd = os.memfd_create("pallet-seccomp", os.MFD_CLOEXEC)
        try:
            rc = self._lib.seccomp_export_bpf(ctx, fd)
            if rc < 0:
                raise InvalidArgument(f"seccomp profile: export failed: {os.strerror(-rc)}")
            size = os.lseek(fd, 0, os.SEEK_END)
            return os.pread(fd, size, 0)
        finally:
            os.close(fd)


def unknown_syscall(name: str) -> InvalidArgument:
    return InvalidArgument(
        f"invalid seccomp profile: unknown system call {name!r}: fix its name, or remove it "
        "(this host's libseccomp does not know it)"
    )


def default_profile_text() -> str:
    return resources.files(__package__).joinpath(DEFAULT_PROFILE_FILE).read_text()


@dataclass(frozen=True, slots=True)
class _Key:
    digest: str  # sha256 of the profile's text
    caps: frozenset[str]


class Programs:
    """Compiled programs, keyed by profile text and capabilities; thread-safe (compiles
    run off the event loop). `profile_text` "" is pallet's default profile."""

    def __init__(self, lib: Libseccomp | None = None) -> None:
        self._lib = lib
        self._programs: dict[_Key, bytes] = {}
        self._lock = threading.Lock()

    def _library(self) -> Libseccomp:
        if self._lib is None:
            self._lib = Libseccomp()
        return self._lib

    def check(self, profile_text: str) -> None:
        """At create: the profile parses and names only system calls libseccomp knows."""
        profile = parse(profile_text)
        lib = self._library()
        for rule in profile.rules:
            for name in rule.names:
                if lib.syscall_number(name) == _NR_SCMP_ERROR:
                    raise unknown_syscall(name)

    def cached(self, profile_text: str, caps: frozenset[str]) -> bytes | None:
        """`program`'s answer if it has it already (no compile, no hashing of the default)."""
        digest = hashlib.sha256(profile_text.encode()).hexdigest() if profile_text else "default"
        return self._programs.get(_Key(digest, caps))

    def program(self, profile_text: str, caps: frozenset[str]) -> bytes:
        """The BPF program for a container with `caps`, compiled on first use."""
        strict = bool(profile_text)
        # The default's key is not a digest: a start with it hashes nothing.
        digest = hashlib.sha256(profile_text.encode()).hexdigest() if strict else "default"
        key = _Key(digest, caps)
        with self._lock:
            cached = self._programs.get(key)
            if cached is not None:
                return cached
            text = profile_text if strict else default_profile_text()
            program = self._library().compile(parse(text), caps, strict)
            if len(self._programs) >= MAX_CACHED:
                # Bounded: many one-off profiles must not grow palletd for ever; the oldest
                # goes (dicts keep insertion order), the default is compiled again if needed.
                del self._programs[next(iter(self._programs))]
            self._programs[key] = program
            return program
