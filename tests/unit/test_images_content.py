"""The content store keeps blobs by digest, refuses wrong content, and reports corruption."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from pallet.daemon.errors import FailedPrecondition, InvalidArgument, NotFound
from pallet.daemon.images.content import ContentStore
from pallet.daemon.images.leases import Leases


def digest_of(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


@pytest.fixture
def store(tmp_path: Path) -> ContentStore:
    content = ContentStore(tmp_path / "content", Leases())
    content.prepare()
    return content


def test_write_then_read_back(store: ContentStore) -> None:
    lease = store.leases.acquire()
    digest = store.write_bytes(b"hello", lease)
    assert digest == digest_of(b"hello")
    assert store.path(digest) == store.root / "blobs" / "sha256" / digest[7:]
    assert store.read_verified(digest) == b"hello"
    assert digest in lease.blobs
    assert list(store.tmp_dir.iterdir()) == []


def test_streamed_writer_and_expected_digest(store: ContentStore) -> None:
    lease = store.leases.acquire()
    with store.writer(lease) as writer:
        for part in (b"a" * 1000, b"b" * 10):
            writer.write(part)
        digest = writer.commit(expected=digest_of(b"a" * 1000 + b"b" * 10))
    assert writer.size == 1010
    store.verify(digest)


def test_wrong_content_is_refused_and_leaves_nothing(store: ContentStore) -> None:
    lease = store.leases.acquire()
    claimed = digest_of(b"what the manifest says")
    with pytest.raises(InvalidArgument, match="does not match its content"):
        store.write_bytes(b"something else", lease, expected=claimed)
    assert not store.exists(claimed)
    assert list(store.blob_dir.iterdir()) == []
    assert list(store.tmp_dir.iterdir()) == []


def test_corrupted_blob_is_reported_not_served(store: ContentStore) -> None:
    lease = store.leases.acquire()
    digest = store.write_bytes(b"precious bytes", lease)
    store.path(digest).write_bytes(b"precious bytez")
    with pytest.raises(FailedPrecondition, match=f"blob {digest} is corrupted"):
        store.verify(digest)
    with pytest.raises(FailedPrecondition, match="corrupted"):
        store.read_verified(digest)
    with store.open_verified(digest) as reader, pytest.raises(FailedPrecondition):
        while reader.read(4):
            pass


def test_missing_blob_and_bad_digest(store: ContentStore) -> None:
    with pytest.raises(NotFound, match="not in the content store"):
        store.read_verified(digest_of(b"never written"))
    with pytest.raises(InvalidArgument, match="invalid digest 'md5:00'"):
        store.path("md5:00")


def test_delete_respects_leases(store: ContentStore) -> None:
    lease = store.leases.acquire()
    digest = store.write_bytes(b"held", lease)
    assert store.delete_unless_leased(digest) is False
    assert store.exists(digest)
    store.leases.release(lease)
    assert store.delete_unless_leased(digest) is True
    assert not store.exists(digest)
    assert store.delete_unless_leased(digest) is False


def test_prepare_drops_temp_leftovers(store: ContentStore) -> None:
    (store.tmp_dir / "blob-halfway").write_bytes(b"partial")
    store.prepare()
    assert list(store.tmp_dir.iterdir()) == []
    assert sorted(store.digests()) == []
