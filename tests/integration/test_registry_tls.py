"""HTTPS registries: trusted through their own CA in the certs directory, refused without it.

Drives the image manager directly (no palletd needed): TLS is the registry client's
business, and the CA directory is a constructor argument.
"""

from __future__ import annotations

import asyncio
import shutil
from pathlib import Path
from typing import Any

import pytest

from registry_harness import start_registry

pytestmark = pytest.mark.integration
# The registries these tests start listen on the host's loopback.
PALLETD_ON_HOST_LOOPBACK = True


def test_pull_and_push_over_https_with_the_registrys_own_ca(tmp_path: Path, busybox_tar: Path) -> None:
    from pallet.v1.errors import FailedPrecondition, Unavailable
    from pallet.daemon.events.bus import EventBus
    from pallet.daemon.images.manager import ImageManager
    from pallet.daemon.images.model import Credentials
    from pallet.daemon.store.db import Database

    reg = start_registry(tls=True)
    try:
        certs = tmp_path / "certs.d"
        (certs / reg.host).mkdir(parents=True)

        async def users(image_id: str) -> list[Any]:
            return []

        async def scenario() -> None:
            db = Database(tmp_path / "pallet.db")
            await db.start()

            events = EventBus(db)
            await events.start()
            manager = ImageManager(db, events, tmp_path / "root", users, registry_certs_dir=certs)
            await manager.start()
            try:
                async def tar() -> Any:
                    yield busybox_tar.read_bytes()

                ref = f"{reg.host}/tls/bb:1"
                await manager.import_rootfs(tar(), ref)
                # No CA yet: loopback means plain HTTP, which this registry does not speak.
                with pytest.raises(FailedPrecondition, match="if it speaks HTTPS, put its CA in"):
                    await manager.push(ref, Credentials(), lambda *a: None)
                shutil.copy(reg.ca, certs / reg.host / "ca.crt")
                digest, _ = await manager.push(ref, Credentials(), lambda *a: None)
                await manager.remove(ref, force=True)
                image, pulled = await manager.pull(ref, "", Credentials(), lambda *a: None)
                assert pulled == digest and image.repo_tags == (ref,)
                # A CA that did not sign the registry's certificate is refused.
                other = start_registry(tls=True)
                try:
                    (certs / other.host).mkdir()
                    shutil.copy(reg.ca, certs / other.host / "ca.crt")
                    with pytest.raises(Unavailable, match="CERTIFICATE_VERIFY_FAILED|certificate verify failed"):
                        await manager.pull(f"{other.host}/x/y:1", "", Credentials(), lambda *a: None)
                finally:
                    other.stop()
            finally:
                await manager.aclose()
                await db.aclose()

        asyncio.run(scenario())
    finally:
        reg.stop()
