"""The client's docker-shaped views of a container's mounts (no daemon)."""

from __future__ import annotations

from types import SimpleNamespace

from pallet.client import views_mounts


def _mount(type_: str, name: str = "", source: str = "") -> SimpleNamespace:
    return SimpleNamespace(type=type_, name=name, source=source)


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
