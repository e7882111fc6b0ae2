"""The content store keeps blobs by digest, refuses wrong content, and reports corruption."""

from __future__ import annotations

import hashlib
import io
import tarfile
from pathlib import Path

import pytest

from pallet.v1.errors import FailedPrecondition, InvalidArgument, NotFound
from pallet.daemon.images.content import CorruptedBlob, ContentStore
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


# --- corruption seen by readers that never ask past the end ----------------------------------


def corrupt(store: ContentStore, data: bytes, at: int) -> str:
    lease = store.leases.acquire()
    digest = store.write_bytes(data, lease)
    damaged = bytearray(data)
    damaged[at] ^= 0x40
    store.path(digest).write_bytes(bytes(damaged))
    return digest


@pytest.mark.parametrize("at", [0, 150_000, 299_999])
def test_reading_exactly_the_size_never_hands_out_a_corrupted_blob_whole(store: ContentStore, at: int) -> None:
    # tarfile (save) and an upload of known length (push) read exactly `size` bytes and
    # never the empty read at the end: the read that completes the blob must raise.
    digest = corrupt(store, bytes(range(250)) * 1200, at)
    got = bytearray()
    with store.open_verified(digest) as reader, pytest.raises(CorruptedBlob, match=f"blob {digest} is corrupted"):
        assert reader.size == 300_000
        while len(got) < reader.size:
            got += reader.read(min(65536, reader.size - len(got)))
    assert len(got) < 300_000


def test_a_tar_of_a_corrupted_blob_fails_instead_of_holding_it(store: ContentStore) -> None:
    digest = corrupt(store, b"layer bytes " * 1000, 5)
    out = io.BytesIO()
    with store.open_verified(digest) as reader, tarfile.open(fileobj=out, mode="w") as tar:
        info = tarfile.TarInfo("blob")
        info.size = reader.size
        with pytest.raises(FailedPrecondition, match="corrupted on disk"):
            tar.addfile(info, reader)


def test_an_intact_blob_reads_whole_in_exact_pieces_and_then_ends(store: ContentStore) -> None:
    lease = store.leases.acquire()
    data = b"x" * 1000
    digest = store.write_bytes(data, lease)
    with store.open_verified(digest) as reader:
        assert reader.read(600) + reader.read(400) == data
        assert reader.read(10) == b""
        reader.drain()


def test_drain_checks_what_a_consumer_stopped_short_of(store: ContentStore) -> None:
    digest = corrupt(store, b"0123456789" * 100, 990)  # in the part the consumer never reads
    with store.open_verified(digest) as reader:
        assert reader.read(100) == b"0123456789" * 10
        with pytest.raises(CorruptedBlob):
            reader.drain()
        with pytest.raises(CorruptedBlob):  # and again: a swallowed error does not pass
            reader.read(1)


def test_a_blob_cut_short_on_disk_is_corrupted(store: ContentStore) -> None:
    lease = store.leases.acquire()
    digest = store.write_bytes(b"whole blob", lease)
    store.path(digest).write_bytes(b"whole")
    with pytest.raises(CorruptedBlob, match="its content hashes to sha256:"):
        store.read_verified(digest)


def test_the_corruption_error_says_what_to_do_naming_the_images() -> None:
    digest, actual = "sha256:" + "a" * 64, "sha256:" + "b" * 64
    error = CorruptedBlob(digest, actual)
    assert isinstance(error, FailedPrecondition) and error.code == "FAILED_PRECONDITION"
    assert str(error) == (
        f"blob {digest} is corrupted on disk (its content hashes to {actual}): "
        "remove the image that uses it and load or pull it again"
    )
    assert str(error.for_images(["app:1, reg:5000/app:1"])).endswith(
        ": remove the image that uses it (app:1, reg:5000/app:1) and load or pull it again"
    )
    two = error.for_images(["app:1", "0123456789ab"])
    assert two.digest == digest and str(two).endswith(
        ": remove the images that use it (app:1; 0123456789ab) and load or pull them again"
    )


def test_size_of_a_missing_blob_is_not_found(store: ContentStore) -> None:
    with pytest.raises(NotFound, match="not in the content store"):
        store.size(digest_of(b"never written"))
    digest = store.write_bytes(b"12345", store.leases.acquire())
    assert store.size(digest) == 5
