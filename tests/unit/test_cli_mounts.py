"""The client's docker-shaped views of a container's mounts (no daemon)."""

from __future__ import annotations

from types import SimpleNamespace

from pallet.client import views_mounts
from pallet.v1.docker import mounts as docker_mounts


def _mount(type_: str, name: str = "", source: str = "", destination: str = "/x",
           origin: str = "", anonymous: bool = False, image_volume: bool = False) -> SimpleNamespace:
    return SimpleNamespace(type=type_, name=name, source=source, destination=destination,
                           origin=origin, anonymous=anonymous, image_volume=image_volume,
                           driver="local", mode="",
                           rw=True, propagation="")


def test_ps_mounts_cut_names_and_sources_as_docker_does() -> None:
    c = SimpleNamespace(mounts=[
        _mount("volume", "a" * 64, "/var/lib/pallet/volumes/" + "a" * 64 + "/_data"),
        _mount("volume", "fifteen-chars-x"),
        _mount("bind", source="/srv/some/long/host/path"),
        _mount("bind", source="/srv"),
        _mount("tmpfs"),
    ])
    assert views_mounts.ps_mounts(c) == "aaaaaaaaaaaaaa…,fifteen-chars-x,/srv/some/long…,/srv"
    assert views_mounts.ps_mounts(c, trunc=False) == (
        "a" * 64 + ",fifteen-chars-x,/srv/some/long/host/path,/srv")


def test_each_kind_of_mount_shows_where_docker_shows_it() -> None:
    c = SimpleNamespace(mounts=[
        _mount("volume", "a" * 64, destination="/anon", origin="v", anonymous=True),
        _mount("volume", "b" * 64, destination="/img", origin="image", anonymous=True),
        _mount("volume", "named", destination="/n", origin="v"),
        _mount("tmpfs", destination="/scratch", origin="tmpfs"),
        _mount("tmpfs", destination="/mt", origin="mount"),
        _mount("volume", "c" * 64, destination="/m", origin="mount", anonymous=True),
        _mount("bind", source="/srv", destination="/srv", origin="v", image_volume=True),
    ])
    assert [m["Destination"] for m in docker_mounts.mounts(c)] == [
        "/anon", "/img", "/n", "/mt", "/m", "/srv"]
    assert docker_mounts.config_volumes(c) == {"/anon": {}, "/img": {}, "/srv": {}}
    cfg = SimpleNamespace(binds=["/anon", "named:/n", "/ro:ro"], volumes_from=[], mounts=[],
                          tmpfs=["/scratch"])
    assert docker_mounts.host_config_mounts(cfg)["Binds"] == ["named:/n", "/ro:ro"]
    assert docker_mounts.config_volumes(SimpleNamespace(mounts=[])) is None
