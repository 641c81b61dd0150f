"""Where finished export files are kept: the local export folder, or any fsspec URL (``s3://…``).

``NANO_EXPORT_STORAGE_URL`` names the store; empty means the export folder, as always. The store's
own options (endpoint, credentials) come only from fsspec's standard configuration and the
environment (``FSSPEC_S3_ENDPOINT_URL``, ``AWS_ACCESS_KEY_ID``, ``AWS_SECRET_ACCESS_KEY``): our
settings hold nothing store-specific.

The file sinks always write a local file (a temporary name, renamed when complete). On the local
store that file already is the stored one. On a remote store :meth:`Storage.publish` uploads it to a
temporary key beside the final one, then moves it to the final key (on S3 a server-side copy, which
appears whole or not at all) and deletes the local file: nothing is ever visible at the final key
before it is complete. Objects are named ``<export id>.<format>`` under the store's root.
"""

from __future__ import annotations

import logging
import os
import secrets
from collections.abc import Iterator
from functools import cached_property
from pathlib import Path
from typing import Final

import fsspec
from fsspec.implementations.local import LocalFileSystem

from nano_export.errors import NanoExportError
from nano_export.settings import Settings

log = logging.getLogger(__name__)

TEMP_SUFFIX: Final = ".part"
READ_BLOCK: Final = 1 << 20


class StorageError(NanoExportError):
    """The export store could not be reached, or refused an operation."""

    exit_code = 1
    http_status = 503


class Storage:
    """The export store named by a URL or a local folder."""

    def __init__(self, location: str | Path) -> None:
        self.url = str(location)
        fs, root = fsspec.core.url_to_fs(self.url)
        self.fs: fsspec.AbstractFileSystem = fs
        self.root: str = str(root).rstrip("/")

    @property
    def is_local(self) -> bool:
        """Whether the store is a folder on this machine (files are served from disk)."""
        return isinstance(self.fs, LocalFileSystem)

    @cached_property
    def display(self) -> str:
        """The store's URL as people see it (never holds credentials: those are in the env)."""
        return self.url if "://" in self.url else str(Path(self.url).resolve())

    def path(self, name: str) -> str:
        """The store path of the object ``name``."""
        if not name or "/" in name or name.startswith("."):
            raise ValueError(f"not an export object name: {name!r}")
        return f"{self.root}/{name}"

    def local_path(self, name: str) -> Path:
        """The file of ``name`` on the local store (ValueError on a remote one)."""
        if not self.is_local:
            raise ValueError(f"{self.display} is not a local folder")
        return Path(self.path(name))

    def uri(self, name: str) -> str:
        """What the export's row records as its file: a path on the local store, else a URL."""
        if self.is_local:
            return str(self.local_path(name))
        return str(self.fs.unstrip_protocol(self.path(name)))

    def publish(self, local_file: Path, name: str) -> str:
        """Make the finished ``local_file`` the object ``name``; returns :meth:`uri`.

        On a remote store the file goes to a temporary key first and is moved to the final key
        only once uploaded; on any failure the temporary key is removed, the final key is left as
        it was, and StorageError names the cause. The local file is removed in every case.
        """
        if self.is_local and Path(local_file).resolve() == self.local_path(name).resolve():
            return self.uri(name)
        final = self.path(name)
        temp = f"{self.root}/.{name}.{secrets.token_hex(6)}{TEMP_SUFFIX}"
        try:
            self.fs.put_file(str(local_file), temp)
            self.fs.mv(temp, final)
        except Exception as exc:
            self._discard(temp)
            raise StorageError(f"could not store {name} in {self.display}: {_why(exc)}") from exc
        finally:
            Path(local_file).unlink(missing_ok=True)
        log.info("export stored", extra={"object": name, "store": self.display})
        self.remove_leftovers(name)  # an earlier attempt that died mid-upload
        return self.uri(name)

    def _discard(self, path: str) -> None:
        try:
            if self.fs.exists(path):
                self.fs.rm_file(path)
        except Exception:  # the temporary key is cleaned by remove_leftovers later
            log.warning("could not remove %s from the store", path, exc_info=True)

    def exists(self, name: str) -> bool:
        """Whether the object ``name`` is in the store."""
        try:
            path = self.path(name)
            if self.is_local:
                local = Path(path)
                return local.is_file() and not local.is_symlink()
            self.fs.invalidate_cache(path)
            return bool(self.fs.isfile(path))
        except Exception as exc:
            raise StorageError(f"could not reach {self.display}: {_why(exc)}") from exc

    def size(self, name: str) -> int:
        """The size in bytes of the object ``name``."""
        return int(self.fs.size(self.path(name)))

    def iter_bytes(self, name: str, block: int = READ_BLOCK) -> Iterator[bytes]:
        """The object's bytes in blocks of ``block``, read as they are sent."""
        with self.fs.open(self.path(name), "rb", block_size=block) as handle:
            while data := handle.read(block):
                yield data

    def delete(self, name: str) -> None:
        """Remove the object ``name`` (nothing happens when it is already gone)."""
        path = self.path(name)
        try:
            if self.fs.exists(path):
                self.fs.rm_file(path)
        except FileNotFoundError:
            pass
        except Exception as exc:
            raise StorageError(f"could not delete {name} from {self.display}: {_why(exc)}") from exc

    def remove_leftovers(self, name: str) -> int:
        """Delete temporary objects a dead writer left for ``name``; returns how many."""
        pattern = f"{self.root}/.{name}.*{TEMP_SUFFIX}"
        removed = 0
        try:
            if not self.is_local:
                self.fs.invalidate_cache(self.root)
            for leftover in self.fs.glob(pattern):
                self.fs.rm_file(leftover)
                removed += 1
        except Exception:
            log.warning("could not clean temporary objects", extra={"object": name}, exc_info=True)
        return removed

    def check(self) -> None:
        """Raise StorageError unless the store can be reached (the local folder is created).

        A remote store is asked about its root only (one small request, however many objects
        it holds); a prefix that holds nothing yet is fine when its bucket exists.
        """
        try:
            if self.is_local:
                Path(self.root).mkdir(parents=True, exist_ok=True)
                if not os.access(self.root, os.W_OK):
                    raise PermissionError(f"{self.root} is not writable")
                return
            self.fs.invalidate_cache(self.root)
            try:
                self.fs.info(self.root)
            except FileNotFoundError:
                bucket = self.root.split("/", 1)[0]
                if bucket == self.root:
                    raise
                self.fs.info(bucket)
        except FileNotFoundError:
            raise StorageError(f"{self.display}: the bucket does not exist") from None
        except Exception as exc:
            raise StorageError(f"{self.display}: {_why(exc)}") from exc


def _why(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    return f"{type(exc).__name__}: {text}"[:300] if text else type(exc).__name__


def get_storage(settings: Settings) -> Storage:
    """The store of ``settings``: ``storage_url``, or the export folder when it is empty."""
    return Storage(settings.storage_url or settings.export_dir)
