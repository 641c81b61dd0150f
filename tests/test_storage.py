"""The export store: the local folder as before, and S3 through fsspec against a real server."""

from __future__ import annotations

import hashlib
from pathlib import Path

import fsspec
import pytest

from nano_export.errors import InvalidSetting
from nano_export.settings import get_settings
from nano_export.storage import Storage, StorageError, get_storage

PAYLOAD = b"id,text\n" + b"".join(b"%d,row %d\n" % (n, n) for n in range(50_000))


def staged(tmp_path: Path, data: bytes = PAYLOAD) -> Path:
    path = tmp_path / "staging" / "abc.csv"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return path


def test_default_store_is_the_export_folder_and_publishing_there_keeps_the_file(
    tmp_path: Path,
) -> None:
    settings = get_settings(data_dir=tmp_path / "data")
    store = get_storage(settings)
    assert store.is_local and Path(store.root) == settings.export_dir.resolve()
    store.check()  # creates the folder
    final = store.local_path("abc.csv")
    final.write_bytes(b"x\n")
    assert store.publish(final, "abc.csv") == str(final)
    assert final.read_bytes() == b"x\n" and store.exists("abc.csv")
    store.delete("abc.csv")
    assert not store.exists("abc.csv")
    store.delete("abc.csv")  # already gone: nothing happens


def test_a_storage_url_that_is_not_a_url_is_refused_naming_the_setting() -> None:
    with pytest.raises(InvalidSetting, match=r"NANO_EXPORT_STORAGE_URL: .*fsspec URL"):
        get_settings(storage_url="my-bucket/prefix")


def test_object_names_cannot_leave_the_store(tmp_path: Path) -> None:
    store = Storage(tmp_path)
    for bad in ("", "../x.csv", "a/b.csv", ".hidden.part"):
        with pytest.raises(ValueError, match="not an export object name"):
            store.path(bad)


def test_publish_to_s3_puts_the_object_at_its_final_key_and_leaves_no_temporary_one(
    s3_url: str, tmp_path: Path
) -> None:
    store = Storage(s3_url)
    store.check()
    local = staged(tmp_path)
    uri = store.publish(local, "abc.csv")
    assert uri == f"{s3_url}/abc.csv"
    assert not local.exists()
    fs = fsspec.filesystem("s3")
    assert fs.ls(s3_url.removeprefix("s3://"), detail=False) == [store.path("abc.csv")]
    assert store.exists("abc.csv") and store.size("abc.csv") == len(PAYLOAD)
    streamed = b"".join(store.iter_bytes("abc.csv", block=64 * 1024))
    assert hashlib.sha256(streamed).hexdigest() == hashlib.sha256(PAYLOAD).hexdigest()
    store.delete("abc.csv")
    assert not store.exists("abc.csv")


def test_upload_failing_after_the_temporary_object_leaves_nothing_at_either_key(
    s3_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = Storage(s3_url)
    uploaded: list[str] = []
    real_put = store.fs.put_file

    def put_then_record(src: str, dst: str, **kw: object) -> None:
        real_put(src, dst, **kw)
        uploaded.append(dst)

    def broken_move(src: str, dst: str, **kw: object) -> None:
        raise ConnectionError("connection reset by peer")

    monkeypatch.setattr(store.fs, "put_file", put_then_record)
    monkeypatch.setattr(store.fs, "mv", broken_move)
    with pytest.raises(StorageError, match=r"could not store abc\.csv .*connection reset"):
        store.publish(staged(tmp_path), "abc.csv")
    assert uploaded and uploaded[0].endswith(".part")
    monkeypatch.undo()
    assert not store.exists("abc.csv")
    fs = fsspec.filesystem("s3")
    fs.invalidate_cache()
    assert not fs.exists(s3_url.removeprefix("s3://")) or fs.ls(s3_url, detail=False) == []


def test_upload_to_a_missing_bucket_fails_clearly_and_stores_nothing(
    s3_env: dict[str, str], tmp_path: Path
) -> None:
    store = Storage("s3://no-such-bucket-here/exports")
    with pytest.raises(StorageError, match="no-such-bucket-here"):
        store.check()
    local = staged(tmp_path)
    with pytest.raises(StorageError, match=r"could not store abc\.csv"):
        store.publish(local, "abc.csv")
    assert not local.exists()


def test_leftover_temporary_objects_of_a_dead_writer_are_removed(
    s3_url: str, tmp_path: Path
) -> None:
    store = Storage(s3_url)
    fs = fsspec.filesystem("s3")
    fs.pipe(f"{store.root}/.abc.csv.1234.part", b"partial")
    fs.pipe(f"{store.root}/.other.csv.1234.part", b"partial")
    assert store.remove_leftovers("abc.csv") == 1
    fs.invalidate_cache()
    assert fs.ls(store.root, detail=False) == [f"{store.root}/.other.csv.1234.part"]


def test_a_prefix_with_nothing_in_it_yet_is_healthy(s3_url: str) -> None:
    Storage(s3_url + "/fresh").check()


def test_publishing_removes_temporary_objects_an_earlier_attempt_left(
    s3_url: str, tmp_path: Path
) -> None:
    store = Storage(s3_url)
    fs = fsspec.filesystem("s3")
    fs.pipe(f"{store.root}/.abc.csv.dead01.part", b"half an upload")
    store.publish(staged(tmp_path), "abc.csv")
    fs.invalidate_cache()
    assert fs.ls(store.root, detail=False) == [store.path("abc.csv")]


def test_a_remote_store_has_no_local_paths_and_deleting_a_missing_object_is_fine(
    s3_url: str,
) -> None:
    store = Storage(s3_url)
    assert not store.is_local and store.display == s3_url
    with pytest.raises(ValueError, match="not a local folder"):
        store.local_path("abc.csv")
    store.delete("never-there.csv")
    assert not store.exists("never-there.csv")
