"""The filesystem blob store: the embedded default, durable through temp file, fsync and rename."""

from __future__ import annotations

import hashlib
import os
import secrets
from pathlib import Path

from casebridge.vault.backends.base import BlobNotFound, BlobStore, BlobWriter, StorageError, check_name

PARTIAL_PREFIX = ".partial-"


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class FileSystemStore(BlobStore):
    """Blobs under a root directory, fanned out two levels by a hash of the name so no directory
    grows past a few thousand entries (ids sharing a prefix still spread evenly).

    A crash leaves at most a `.partial-*` file, never a half-written blob under its real name.
    """

    def __init__(self, root: Path) -> None:
        self.root = Path(root)
        try:
            self.root.mkdir(parents=True, exist_ok=True, mode=0o700)
        except OSError as exc:
            raise StorageError(f"blob directory {self.root} cannot be created: {exc}") from exc
        if not os.access(self.root, os.W_OK | os.X_OK):
            raise StorageError(f"blob directory {self.root} is not writable")

    def path_for(self, name: str) -> Path:
        digest = hashlib.sha256(check_name(name).encode()).hexdigest()
        return self.root / digest[:2] / digest[2:4] / name.replace("/", "~")

    def open_writer(self, name: str) -> BlobWriter:
        return _FileWriter(self, self.path_for(name))

    def read_range(self, name: str, start: int, end: int) -> bytes:
        if start < 0 or end < start:
            raise ValueError(f"invalid range [{start}, {end})")
        try:
            with open(self.path_for(name), "rb", buffering=0) as handle:
                return os.pread(handle.fileno(), end - start, start) if end > start else b""
        except FileNotFoundError:
            raise BlobNotFound(name) from None

    def size(self, name: str) -> int:
        try:
            return self.path_for(name).stat().st_size
        except FileNotFoundError:
            raise BlobNotFound(name) from None

    def exists(self, name: str) -> bool:
        return self.path_for(name).is_file()

    def delete(self, name: str) -> bool:
        path = self.path_for(name)
        try:
            path.unlink()
        except FileNotFoundError:
            return False
        _fsync_dir(path.parent)
        return True


class _FileWriter(BlobWriter):
    def __init__(self, store: FileSystemStore, final: Path) -> None:
        self._final = final
        self._created_dirs = self._make_parents(store.root, final.parent)
        self._temp = final.parent / f"{PARTIAL_PREFIX}{secrets.token_hex(8)}"
        self._file = open(self._temp, "xb")  # noqa: SIM115 - closed in commit/abort
        os.fchmod(self._file.fileno(), 0o600)
        self._size = 0
        self._done = False

    @staticmethod
    def _make_parents(root: Path, parent: Path) -> list[Path]:
        created = []
        for directory in (parent.parent, parent):
            try:
                directory.mkdir(mode=0o700)
                created.append(directory)
            except FileExistsError:
                pass
        return created

    def write(self, data: bytes | bytearray | memoryview, /) -> int:
        written = self._file.write(data)
        self._size += written
        return written

    def commit(self) -> int:
        if self._done:
            return self._size
        self._file.flush()
        os.fsync(self._file.fileno())
        self._file.close()
        os.replace(self._temp, self._final)
        # The rename, and any fan-out directory made for it, must reach the disk too.
        _fsync_dir(self._final.parent)
        for directory in self._created_dirs:
            _fsync_dir(directory.parent)
        self._done = True
        return self._size

    def abort(self) -> None:
        if self._done:
            return
        self._done = True
        self._file.close()
        self._temp.unlink(missing_ok=True)
