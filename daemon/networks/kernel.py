"""The kernel side of networks: namespaces, bridges, veth pairs, routes, sysctls.

Owns: sending every netlink request and making every namespace syscall that networks make,
on ONE worker thread that keeps a netlink socket in the host network namespace (the one
palletd runs in), the `Kernel` protocol the network manager uses, and the mapping of kernel
failures to pallet's errors. What an attachment is and the fields of the requests that wire
it are `attachment.py`'s (pure values, tested without root). Must not: decide names,
addresses or policy (the network manager and IPAM do), keep state beyond its sockets,
import anything of the API, or be imported by the CLI or the shim (pyroute2 costs ~120 ms
and 14 MB; it is imported on the worker thread at `start()`).

A network namespace ("netns") is a separate copy of the network stack: links, addresses,
routes, sysctls. A container's netns is made before its init and kept alive by a bind
mount of its nsfs file at `<run_root>/netns/<name>`, so palletd can wire it first and the
shim can join it by path.

Why one thread: the netns a syscall or ioctl acts on is the *calling thread's*, and a
netlink socket acts on the netns it was opened in. The worker opens its host sockets once,
at start; to act inside a container's netns it setns()es itself in, opens a short-lived
socket there, acts, closes it and always setns()es back (in `finally`). Jobs run one at a
time on the worker's own event loop, so no job ever sees the thread in another job's
namespace. Cold paths (dumps, bridges) use pyroute2's `AsyncIPRoute`; attach's requests
are pyroute2 messages sent on a bare socket (`netsys.Rtnl`, ten times cheaper per request).

Speed (bench/net_attach.py): a netns is unshare(CLONE_NEWNET) of the worker thread plus a
bind mount (no fork); the veth is ONE request creating it with its peer already inside
the container's netns, named, with its MAC and MTU, the host end on the bridge and up.
The peer cannot be created up (veth_open fails with ENOTCONN until the pair is linked),
so it is set up from inside. Removing a netns is an unmount (0.1 ms): the kernel frees
its veths later, so host names must not be reused at once; deleting a veth blocks ~30 ms.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import errno
import ipaddress
import os
import secrets
import socket
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, NoReturn, Protocol, TypeVar

import structlog

from pallet.daemon.networks.attachment import (
    RT_TABLE_MAIN,
    Attachment,
    address_request,
    check_ifname,
    check_mtu,
    check_netns_name,
    default_route_request,
    hairpin_request,
    parse_interface,
    veth_request,
)
from pallet.daemon.networks.netsys import (
    CLONE_NEWNET,
    IFF_UP,
    NLM_F_CREATE,
    NLM_F_EXCL,
    Libc,
    Rtnl,
    if_index,
    link_up,
)
from pallet.v1.errors import (
    AlreadyExists,
    FailedPrecondition,
    Internal,
    PalletError,
)

log = structlog.get_logger(__name__)

T = TypeVar("T")

# linux/rtnetlink.h
RTM_NEWLINK = 16
RTM_NEWADDR = 20
RTM_NEWROUTE = 24
RTM_DELLINK = 17


class Kernel(Protocol):
    """What the network manager needs of the kernel (`NetKernel`; fakes in tests)."""

    async def start(self) -> None: ...
    async def close(self) -> None: ...

    def netns_path(self, name: str) -> Path: ...
    async def make_netns(self, name: str) -> Path: ...
    async def remove_netns(self, name: str) -> None: ...
    async def list_netns(self) -> list[str]: ...
    async def ensure_bridge(self, name: str, gateway: str, mtu: int = 1500) -> None: ...
    async def delete_bridge(self, name: str) -> None: ...
    async def attach(self, a: Attachment) -> None: ...
    async def detach(self, host_ifname: str) -> None: ...
    async def links(self, prefix: str = "") -> list[str]: ...
    async def routes(self) -> list[ipaddress.IPv4Network]: ...
    async def enable_forwarding(self, bridge: str) -> None: ...


def os_errno(exc: BaseException) -> int | None:
    """The errno of an OSError or of pyroute2's NetlinkError (`.code`), else None."""
    if isinstance(exc, OSError):
        return exc.errno
    code = getattr(exc, "code", None)
    return code if isinstance(code, int) else None


def kernel_error(action: str, exc: Exception) -> PalletError:
    """A kernel failure as pallet's error, naming what was being done (a PalletError
    raised on purpose passes through as it is)."""
    if isinstance(exc, PalletError):
        return exc
    code = os_errno(exc)
    reason = f"{os.strerror(code)} (errno {code})" if code else repr(exc)
    if code == errno.EEXIST:
        return AlreadyExists(f"{action}: {reason}")
    return Internal(f"{action}: {reason}")


def _reraise(action: str, exc: BaseException) -> NoReturn:
    """Raise `exc` as pallet's error; cancellation and the like pass through unchanged."""
    if isinstance(exc, Exception) and not isinstance(exc, PalletError):
        raise kernel_error(action, exc) from exc
    raise exc


def _message(kind: str, fields: dict[str, Any]) -> Any:
    """A pyroute2 message of class `kind` with `fields` (pyroute2 is imported late)."""
    if kind == "ifinfmsg":
        from pyroute2.netlink.rtnl.ifinfmsg import ifinfmsg as cls
    elif kind == "ifaddrmsg":
        from pyroute2.netlink.rtnl.ifaddrmsg import ifaddrmsg as cls
    else:
        from pyroute2.netlink.rtnl.rtmsg import rtmsg as cls
    msg = cls()
    for key, value in fields.items():
        msg[key] = value
    return msg


class NetKernel:
    """Namespaces, bridges and veths, every call naming the netns it acts on.

    "Host netns" is the netns palletd runs in, taken by the worker thread at `start()`.
    """

    def __init__(self, run_root: Path) -> None:
        self._netns_dir = run_root / "netns"
        self._libc = Libc()
        self._executor: concurrent.futures.ThreadPoolExecutor | None = None
        self._loop: asyncio.AbstractEventLoop | None = None  # the worker's own
        self._host_fd = -1
        self._host_dev = -1  # st_dev of nsfs: what a live netns file's stat shows
        self._ipr: Any = None  # AsyncIPRoute in the host netns: dumps, bridges
        self._rtnl: Rtnl | None = None  # bare socket in the host netns: attach's requests
        self._broken = ""  # set when the worker could not return to the host netns

    # ------------------------------------------------------------------ lifecycle

    async def start(self) -> None:
        self._executor = concurrent.futures.ThreadPoolExecutor(
            max_workers=1, thread_name_prefix="pallet-netkernel"
        )
        await asyncio.get_running_loop().run_in_executor(self._executor, self._start_worker)

    def _start_worker(self) -> None:
        from pyroute2 import AsyncIPRoute

        self._netns_dir.mkdir(parents=True, exist_ok=True)
        self._host_fd = os.open("/proc/thread-self/ns/net", os.O_RDONLY | os.O_CLOEXEC)
        self._host_dev = os.fstat(self._host_fd).st_dev
        self._loop = loop = asyncio.new_event_loop()

        async def open_host_socket() -> Any:
            # No multicast groups: nobody reads events here. The worker's loop, given
            # explicitly: pyroute2 would otherwise make (and later close) one of its own.
            ipr = AsyncIPRoute(groups=0, use_event_loop=loop)
            await ipr.setup_endpoint()
            return ipr

        self._ipr = loop.run_until_complete(open_host_socket())
        self._rtnl = Rtnl()

    async def close(self) -> None:
        executor, self._executor = self._executor, None
        if executor is None:
            return
        try:
            await asyncio.get_running_loop().run_in_executor(executor, self._close_worker)
        finally:
            executor.shutdown(wait=True)

    def _close_worker(self) -> None:
        if self._rtnl is not None:
            self._rtnl.close()
            self._rtnl = None
        if self._ipr is not None:
            self._ipr.close()
            self._ipr = None
        if self._loop is not None:
            # close() aborts the transport; its connection_lost runs on the next turns.
            for _ in range(3):
                self._loop.run_until_complete(asyncio.sleep(0))
            self._loop.run_until_complete(self._loop.shutdown_asyncgens())
            self._loop.close()
            self._loop = None
        if self._host_fd >= 0:
            os.close(self._host_fd)
            self._host_fd = -1

    async def _run(self, job: Callable[[], Awaitable[T]]) -> T:
        """Run `job` on the worker thread's loop, alone."""
        if self._executor is None:
            raise Internal("the network kernel is not started")

        def on_worker() -> T:
            if self._broken:
                raise Internal(f"the network kernel is unusable: {self._broken}")
            assert self._loop is not None
            return self._loop.run_until_complete(job())

        return await asyncio.get_running_loop().run_in_executor(self._executor, on_worker)

    def _back_home(self) -> None:
        """Return the worker to the host netns; if even that fails, refuse all further work."""
        try:
            self._libc.setns(self._host_fd, CLONE_NEWNET)
        except OSError as exc:
            self._broken = f"cannot return to the host network namespace: {exc}"
            log.error("netkernel.broken", reason=self._broken)
            raise Internal(self._broken) from exc

    # ------------------------------------------------------------------ namespaces

    def netns_path(self, name: str) -> Path:
        return self._netns_dir / check_netns_name(name)

    def _is_live_netns(self, path: Path) -> bool:
        try:
            return path.stat().st_dev == self._host_dev
        except FileNotFoundError:
            return False

    async def make_netns(self, name: str) -> Path:
        """A new netns with `lo` up, bind-mounted at `netns_path(name)`.

        A live netns of that name already is AlreadyExists (it may hold a container's
        veths; remove it first); a stale file (a crash between create and mount) is reused.
        """
        path = self.netns_path(name)

        async def job() -> Path:
            if self._is_live_netns(path):
                raise AlreadyExists(f"network namespace {name} exists already at {path}")
            os.close(os.open(path, os.O_CREAT | os.O_RDONLY | os.O_CLOEXEC, 0o444))
            mounted = False
            try:
                self._libc.unshare(CLONE_NEWNET)  # this thread only
                try:
                    self._libc.bind_mount("/proc/thread-self/ns/net", str(path))
                    mounted = True
                    link_up("lo")
                finally:
                    self._back_home()
            except BaseException as exc:
                if mounted:
                    self._libc.umount_detach(str(path))
                path.unlink(missing_ok=True)
                _reraise(f"make network namespace {name}", exc)
            return path

        return await self._run(job)

    async def remove_netns(self, name: str) -> None:
        """Unmount (MNT_DETACH) and unlink; the kernel frees its veths later. Idempotent."""
        path = self.netns_path(name)

        async def job() -> None:
            for _ in range(8):  # a file mounted over more than once unmounts layer by layer
                try:
                    self._libc.umount_detach(str(path))
                except OSError as exc:
                    if exc.errno in (errno.EINVAL, errno.ENOENT):
                        break
                    raise kernel_error(f"unmount network namespace {name}", exc) from exc
            path.unlink(missing_ok=True)

        await self._run(job)

    async def list_netns(self) -> list[str]:
        """Names of the files under <run_root>/netns/, live or stale (sorted)."""

        async def job() -> list[str]:
            try:
                return sorted(entry.name for entry in os.scandir(self._netns_dir))
            except FileNotFoundError:
                return []

        return await self._run(job)

    # ------------------------------------------------------------------ host links

    async def _link(self, name: str) -> Any | None:
        """The host netns link called `name`, or None."""
        try:
            found = await self._ipr.link("get", ifname=name)
        except Exception as exc:
            if os_errno(exc) == errno.ENODEV:
                return None
            raise kernel_error(f"look up link {name}", exc) from exc
        return found[0] if found else None

    async def ensure_bridge(self, name: str, gateway: str, mtu: int = 1500) -> None:
        """Bridge `name` exists, has exactly the address `gateway` ("172.18.0.1/16"), `mtu`
        and is up. Idempotent; a wrong address is replaced. A link of that name that is
        not a bridge is FailedPrecondition.
        """
        check_ifname(name, "bridge name")
        want = parse_interface(gateway, "gateway")
        check_mtu(mtu)

        async def job() -> None:
            action = f"set up bridge {name}"
            try:
                link = await self._link(name)
                if link is None:
                    # An explicit MAC keeps the bridge's own: otherwise it takes the lowest
                    # port's, and every container's ARP entry for the gateway goes stale.
                    mac = "02:" + ":".join(f"{b:02x}" for b in secrets.token_bytes(5))
                    try:
                        await self._ipr.link("add", ifname=name, kind="bridge", address=mac, mtu=mtu)
                    except Exception as exc:
                        if os_errno(exc) != errno.EEXIST:
                            raise
                    link = await self._link(name)
                    if link is None:
                        raise Internal(f"{action}: bridge vanished right after it was made")
                if link.get(("linkinfo", "kind")) != "bridge":
                    raise FailedPrecondition(
                        f"link {name} exists and is not a bridge: pick another bridge name"
                    )
                index = link["index"]
                if link.get("mtu") != mtu:
                    await self._ipr.link("set", index=index, mtu=mtu)
                dump = await self._ipr.addr("dump", index=index, family=socket.AF_INET)
                have = [(addr.get("address"), addr["prefixlen"]) async for addr in dump]
                present = False
                for address, prefixlen in have:
                    if (address, prefixlen) == (str(want.ip), want.network.prefixlen):
                        present = True
                    else:
                        await self._ipr.addr("del", index=index, address=address, prefixlen=prefixlen)
                if not present:
                    await self._ipr.addr(
                        "add", index=index, address=str(want.ip), prefixlen=want.network.prefixlen
                    )
                if not link["flags"] & IFF_UP:
                    await self._ipr.link("set", index=index, state="up")
            except Exception as exc:
                _reraise(action, exc)

        await self._run(job)

    async def delete_bridge(self, name: str) -> None:
        """Delete bridge `name` (its ports fall off it). Idempotent; not a bridge:
        FailedPrecondition."""
        check_ifname(name, "bridge name")
        await self._run(lambda: self._delete_link(name, "bridge"))

    async def detach(self, host_ifname: str) -> None:
        """Delete the veth whose host end is `host_ifname` (both ends go). Idempotent."""
        check_ifname(host_ifname, "host interface name")
        await self._run(lambda: self._delete_link(host_ifname, "veth"))

    async def _delete_link(self, name: str, kind: str) -> None:
        try:
            link = await self._link(name)
            if link is None:
                return
            if link.get(("linkinfo", "kind")) != kind:
                raise FailedPrecondition(f"link {name} is not a {kind}: pallet leaves it alone")
            await self._ipr.link("del", index=link["index"])
        except Exception as exc:
            if os_errno(exc) == errno.ENODEV:
                return
            _reraise(f"delete {kind} {name}", exc)

    async def links(self, prefix: str = "") -> list[str]:
        """Names of the host netns's links that start with `prefix` (sorted)."""

        async def job() -> list[str]:
            try:
                names = [link.get("ifname") async for link in await self._ipr.link("dump")]
            except Exception as exc:
                raise kernel_error("list links", exc) from exc
            return sorted(n for n in names if isinstance(n, str) and n.startswith(prefix))

        return await self._run(job)

    async def routes(self) -> list[ipaddress.IPv4Network]:
        """Destinations of the host netns's IPv4 routes in the main table, without the
        default route (sorted, once each): subnets IPAM must not overlap."""

        async def job() -> list[ipaddress.IPv4Network]:
            found: set[ipaddress.IPv4Network] = set()
            try:
                async for route in await self._ipr.route(
                    "dump", family=socket.AF_INET, table=RT_TABLE_MAIN
                ):
                    if route["dst_len"] and route.get("dst"):
                        found.add(ipaddress.IPv4Network(
                            f"{route.get('dst')}/{route['dst_len']}", strict=False
                        ))
            except Exception as exc:
                raise kernel_error("list routes", exc) from exc
            return sorted(found)

        return await self._run(job)

    async def enable_forwarding(self, bridge: str) -> None:
        """net.ipv4.ip_forward=1 and net.ipv4.conf.<bridge>.route_localnet=1 (DNAT from
        127.0.0.1 to a container needs it) in the host netns. These sysctls belong to the
        netns of the thread that opens them, so the worker writes them."""
        check_ifname(bridge, "bridge name")

        async def job() -> None:
            for path in ("ipv4/ip_forward", f"ipv4/conf/{bridge}/route_localnet"):
                try:
                    with open(f"/proc/sys/net/{path}", "w") as f:
                        f.write("1\n")
                except FileNotFoundError:
                    raise FailedPrecondition(
                        f"bridge {bridge} does not exist: cannot enable forwarding on it"
                    ) from None
                except OSError as exc:
                    raise kernel_error(f"write net.{path.replace('/', '.')}", exc) from exc

        await self._run(job)

    # ------------------------------------------------------------------ attachments

    async def attach(self, a: Attachment) -> None:
        """Make `a`'s veth pair and wire its peer: MAC, MTU, address, up, default route via
        `a.gateway`; the host end on the bridge, up, in hairpin mode (so a container can
        reach a port the host publishes that leads back to itself).

        FailedPrecondition: no such bridge or no live netns. AlreadyExists: the host name,
        the name inside, or a default route inside exists already. Whatever fails, nothing
        is left behind: a veth made here is deleted before the error is raised.
        """

        async def job() -> None:
            path = self.netns_path(a.netns)
            # The worker is in the host netns here, so the ioctl looks there. Whether it is
            # a bridge is checked only if the kernel refuses it as a master (see below).
            bridge_index = if_index(a.bridge)
            if bridge_index is None:
                raise FailedPrecondition(f"bridge {a.bridge} does not exist: create its network first")
            try:
                fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
            except FileNotFoundError:
                raise FailedPrecondition(f"network namespace {a.netns} does not exist") from None
            try:
                if os.fstat(fd).st_dev != self._host_dev:
                    raise FailedPrecondition(
                        f"network namespace {a.netns} is a stale file, not a live namespace"
                    )
                assert self._rtnl is not None
                try:
                    self._create_veth(self._rtnl, a, bridge_index, fd)
                except TimeoutError as exc:
                    # Unanswered: the kernel may have made it all the same.
                    self._discard_veth(self._rtnl, a.host_ifname)
                    _reraise(f"create veth {a.host_ifname}", exc)
                try:
                    host_index = if_index(a.host_ifname)
                    if host_index is None:
                        raise Internal(f"{a.host_ifname} is missing right after it was made")
                    self._rtnl.request(
                        _message("ifinfmsg", hairpin_request(host_index)), RTM_NEWLINK
                    )
                    self._wire_peer(a, fd)
                except BaseException as exc:
                    self._discard_veth(self._rtnl, a.host_ifname)
                    _reraise(f"attach {a.host_ifname} to {a.bridge}", exc)
            finally:
                os.close(fd)

        await self._run(job)

    def _create_veth(self, rtnl: Rtnl, a: Attachment, bridge_index: int, netns_fd: int) -> None:
        try:
            rtnl.request(_message("ifinfmsg", veth_request(a, bridge_index, netns_fd)),
                         RTM_NEWLINK, NLM_F_CREATE | NLM_F_EXCL)
        except OSError as exc:
            if exc.errno == errno.EEXIST:
                taken = (
                    f"link {a.host_ifname}"
                    if if_index(a.host_ifname) is not None
                    else f"interface {a.ifname} in network namespace {a.netns}"
                )
                raise AlreadyExists(f"attach {a.host_ifname}: {taken} exists already") from exc
            if exc.errno in (errno.EOPNOTSUPP, errno.EINVAL, errno.ENODEV):
                raise FailedPrecondition(
                    f"attach {a.host_ifname}: {a.bridge} is not a bridge, or is gone"
                ) from exc
            raise kernel_error(f"create veth {a.host_ifname}", exc) from exc

    def _wire_peer(self, a: Attachment, netns_fd: int) -> None:
        """Inside the container's netns: the peer up, its address, the default route."""
        self._libc.setns(netns_fd, CLONE_NEWNET)
        try:
            index = if_index(a.ifname)  # the worker is inside now: looks there
            if index is None:
                raise Internal(f"{a.ifname} is missing in {a.netns} right after it was made")
            link_up(a.ifname)
            with Rtnl() as inside:  # opened here, so it acts in this netns
                inside.request(_message("ifaddrmsg", address_request(a, index)),
                               RTM_NEWADDR, NLM_F_CREATE | NLM_F_EXCL)
                if a.gateway:
                    try:
                        inside.request(_message("rtmsg", default_route_request(a, index)),
                                       RTM_NEWROUTE, NLM_F_CREATE | NLM_F_EXCL)
                    except OSError as exc:
                        if exc.errno == errno.EEXIST:
                            raise FailedPrecondition(
                                f"network namespace {a.netns} has a default route already: "
                                "only one of its attachments may have a gateway"
                            ) from exc
                        raise
        finally:
            self._back_home()

    @staticmethod
    def _discard_veth(rtnl: Rtnl, host_ifname: str) -> None:
        """Undo a half-made attachment; a failure here is logged, the first error raised."""
        index = if_index(host_ifname)
        if index is None:
            return
        try:
            rtnl.request(_message("ifinfmsg", {"index": index}), RTM_DELLINK)
        except OSError as exc:
            if exc.errno != errno.ENODEV:
                log.error("netkernel.discard_failed", link=host_ifname, error=repr(exc))
