"""Backups that restore: a consistent copy of the database and of the blob store's ciphertext,
under a signed manifest, into a folder (another disk, a mounted NAS).

Layout of a destination:

    DEST/blobs/objects/<id>/v1-<rand>          ciphertext exactly as stored (names are immutable)
    DEST/blobs/objects/<id>/v1-<rand>.sha256   its SHA-256, written once beside it
    DEST/sets/<set id>/database.sqlite3        SQLite's online backup of the database, or
    DEST/sets/<set id>/database.pgdump         pg_dump -Fc, from the same snapshot the blob list came from
    DEST/sets/<set id>/manifest.json           every blob with size and SHA-256, the database file's, counts
    DEST/sets/<set id>/manifest.sig.json       Ed25519 signature of manifest.json (keyring signing key)

Blobs are shared by every set of a destination and never copied twice, so the second backup costs
what changed. A set is written under `.<id>.partial` and renamed when complete: an interrupted
backup leaves no set, and the next run copies only the blobs still missing. Keys are never in a
backup (retention/keyexport.py); neither are sessions, staged uploads or mail.

Restoring refuses a target in use unless forced, checks the manifest's signature against the
exported keyring and every blob's hash, installs the database, the blobs and the keys, then ends
every session and revokes every API token (see docs/backups.md: a token revoked after the backup
was taken must not come back to life), and proves the result: every file decrypts to its recorded
SHA-256 and the audit chain and its checkpoints verify.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import mmap
import os
import secrets
import shutil
import sqlite3
import subprocess
import tempfile
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

from django.conf import settings
from django.utils import timezone

from casebridge.kernel.backends.filesystem import sync_under
from casebridge.kernel.crypto.streaming import read_full
from casebridge.vault.keyexport import ExportedKeys

FORMAT = "casebridge-backup/1"
COPY_CHUNK = 8 << 20
# Blobs are copied, installed and proved this many at a time: reading, writing, SHA-256 and
# AES-GCM all release the GIL, so two threads use two cores (and overlap one's disk wait with
# the other's hashing).
WORKERS = max(2, min(4, os.cpu_count() or 1))
Progress = Callable[[str, int, int], None]  # (phase, done, total)
_T = TypeVar("_T")
_R = TypeVar("_R")


class BackupError(RuntimeError):
    """The backup or restore cannot go on; the message says why and what to do."""


def _quiet(_phase: str, _done: int, _total: int) -> None:
    return None


# --- writing a set --------------------------------------------------------------------------
@dataclass
class CreatedSet:
    set_id: str
    path: Path
    blobs: int
    blobs_copied: int
    bytes_copied: int
    bytes_total: int
    seconds: float
    missing: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class _Snapshot:
    engine: str  # "sqlite" or "postgresql"
    file: str
    blobs: list[tuple[str, int]]  # (name, ciphertext size) of every live version
    events: int
    newest_event_at: str | None


def _sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while chunk := handle.read(COPY_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


_local = threading.local()


def _copy_buffer() -> memoryview:
    """This thread's COPY_CHUNK buffer (an anonymous mmap), reused for every blob: no new memory
    (and no page faults) per piece read."""
    view: memoryview | None = getattr(_local, "view", None)
    if view is None:
        _local.buffer = mmap.mmap(-1, COPY_CHUNK)
        view = _local.view = memoryview(_local.buffer)
    return view


def _in_parallel(items: Iterable[_T], work: Callable[[_T], _R], workers: int = WORKERS) -> Iterator[tuple[_T, _R]]:
    """(item, work(item)) in the items' order, `workers` at a time with a bounded backlog; an
    exception in `work` is raised here, after the work already started has finished."""
    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="backup") as pool:
        window: list[tuple[_T, Future[_R]]] = []
        for item in items:
            window.append((item, pool.submit(work, item)))
            if len(window) >= 2 * workers:
                first, future = window.pop(0)
                yield first, future.result()
        for item, future in window:
            yield item, future.result()


@contextlib.contextmanager
def _locked(dest: Path) -> Iterator[None]:
    """One backup at a time per destination (a scheduled one and a manual one may meet)."""
    with (dest / ".lock").open("a") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise BackupError(f"another backup into {dest} is running; try again when it has finished") from None
        yield


def run_tool(
    argv: list[str],
    *,
    env: dict[str, str] | None = None,
    cwd: Path | None = None,
    on_line: Callable[[str], None] | None = None,
) -> subprocess.CompletedProcess[str]:
    """Run an existing tool (pg_dump, pg_restore, restic) found by shutil.which, without a shell;
    secrets go in `env`, never in `argv`. Each line of its output goes to `on_line` as it comes
    (restic's --json progress); the whole output and errors are returned as well."""
    with tempfile.TemporaryFile("w+") as errors:
        proc = subprocess.Popen(  # noqa: S603 - a tool from shutil.which; arguments from our settings
            argv, env=env, cwd=cwd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=errors, text=True
        )
        assert proc.stdout is not None
        lines = []
        for line in proc.stdout:
            lines.append(line)
            if on_line is not None:
                on_line(line)
        code = proc.wait()
        errors.seek(0)
        return subprocess.CompletedProcess(argv, code, "".join(lines), errors.read())


def _database() -> dict[str, Any]:
    return dict(settings.DATABASES["default"])


# Files' ciphertext and the audit log's archive segments (audit/archive.py).
_LIVE_BLOBS = (
    "SELECT blob_name, ciphertext_size FROM vault_objectversion WHERE wrapped_dek IS NOT NULL AND base_id IS NULL "
    "UNION ALL SELECT blob_name, ciphertext_size FROM audit_archive_segment WHERE destroyed_at IS NULL "
    "ORDER BY blob_name"
)
_EVENTS = "SELECT count(*), max(occurred_at) FROM audit_event"


def _iso_utc(value: Any) -> str | None:
    """A database timestamp (SQLite gives naive UTC text, PostgreSQL an aware datetime) as ISO 8601."""
    if not value:
        return None
    moment = value if isinstance(value, datetime) else datetime.fromisoformat(str(value))
    return (moment if moment.tzinfo else moment.replace(tzinfo=UTC)).isoformat()


def _snapshot_sqlite(target: Path) -> _Snapshot:
    source = sqlite3.connect(str(_database()["NAME"]), timeout=30)
    copy = sqlite3.connect(str(target))
    try:
        source.backup(copy)  # SQLite's online backup: a consistent copy while the portal writes
        blobs = [(str(n), int(s)) for n, s in copy.execute(_LIVE_BLOBS)]
        count, newest = copy.execute(_EVENTS).fetchone()
    finally:
        copy.close()
        source.close()
    return _Snapshot("sqlite", target.name, blobs, int(count), _iso_utc(newest))


def _pg_url() -> str:
    db = _database()
    user = f"{db.get('USER') or ''}" + (f":{db['PASSWORD']}" if db.get("PASSWORD") else "")
    host = f"{db.get('HOST') or '127.0.0.1'}:{db.get('PORT') or 5432}"
    return f"postgresql://{user}@{host}/{db['NAME']}" if user else f"postgresql://{host}/{db['NAME']}"


def _snapshot_postgresql(target: Path) -> _Snapshot:
    """pg_dump and the blob list from one exported snapshot: the list names exactly the blobs the
    dumped rows refer to, whatever the portal writes meanwhile."""
    import psycopg

    pg_dump = shutil.which("pg_dump")
    if pg_dump is None:
        raise BackupError("pg_dump is not installed (Debian: apt-get install postgresql-client)")
    with psycopg.connect(_pg_url()) as conn:
        conn.execute("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")
        snapshot = conn.execute("SELECT pg_export_snapshot()").fetchone()
        assert snapshot is not None
        blobs = [(str(n), int(s)) for n, s in conn.execute(_LIVE_BLOBS)]
        row = conn.execute(_EVENTS).fetchone()
        assert row is not None
        done = run_tool([pg_dump, "-Fc", f"--snapshot={snapshot[0]}", "-f", str(target), "--dbname", _pg_url()])
        conn.execute("COMMIT")
    if done.returncode != 0:
        raise BackupError(f"pg_dump failed: {done.stderr.strip()[:500]}")
    return _Snapshot("postgresql", target.name, blobs, int(row[0]), _iso_utc(row[1]))


def _link_blob(store: Any, name: str, size: int, final: Path) -> str | None:
    """Hard-link the stored ciphertext into a spool on the same disk (no copy: blobs are never
    changed under their name) and hash it; None when the store cannot (another disk, S3)."""
    from casebridge.kernel.backends import BlobNotFound
    from casebridge.kernel.backends.filesystem import FileSystemStore

    if not isinstance(store, FileSystemStore):
        return None
    source = store.path_for(name)
    tmp = final.with_name(f".{final.name}.{os.getpid()}.part")
    try:
        os.link(source, tmp)
    except FileNotFoundError:
        raise BlobNotFound(name) from None
    except OSError:
        return None  # another file system: copy instead
    if tmp.stat().st_size != size:
        tmp.unlink()
        return None
    digest = _sha256_file(tmp)
    os.replace(tmp, final)
    return digest


def _known_digest(final: Path, size: int) -> str | None:
    """The SHA-256 of a blob already in the destination (blobs never change under a name), from
    its sidecar; None when the blob or a whole sidecar is not there (it is copied again)."""
    try:
        if final.stat().st_size != size:
            return None
        digest = final.with_name(final.name + ".sha256").read_text().strip()
    except FileNotFoundError:
        return None
    return digest if len(digest) == 64 and all(c in "0123456789abcdef" for c in digest) else None


def _blob_pieces(store: Any, name: str, size: int) -> Iterator[memoryview]:
    """The stored ciphertext of a blob in pieces of up to COPY_CHUNK, read into this thread's
    buffer (each piece is overwritten by the next: write it out first)."""
    from casebridge.kernel.backends import BlobNotFound
    from casebridge.kernel.backends.filesystem import FileSystemStore

    if not isinstance(store, FileSystemStore):
        for start in range(0, size, COPY_CHUNK):
            yield memoryview(store.read_range(name, start, min(size, start + COPY_CHUNK)))
        return
    view = _copy_buffer()
    try:
        with open(store.path_for(name), "rb", buffering=0) as handle:
            left = size
            while left > 0:
                got = read_full(handle, view[: min(left, COPY_CHUNK)])
                if not got:
                    return
                yield view[:got]
                left -= got
    except FileNotFoundError:  # only open() raises it here: a blob shredded since the snapshot
        raise BlobNotFound(name) from None


def _copy_blob(store: Any, name: str, size: int, dest_blobs: Path, *, link: bool = False) -> tuple[str, bool]:
    """(SHA-256 of the ciphertext, whether it was copied now). With `link`, a blob store on the
    same disk is hard-linked rather than copied (the spool a restic repository is fed from).

    A blob copied now is renamed into place but not yet synced, and has no sidecar: the caller
    syncs the destination once, then writes the sidecars (_write_sidecars), so a sidecar only
    ever vouches for a blob that is on disk."""
    from casebridge.kernel.backends.filesystem import Writeback, preallocate

    final = dest_blobs / name
    if (known := _known_digest(final, size)) is not None:
        return known, False
    final.parent.mkdir(parents=True, exist_ok=True)
    if link and (linked := _link_blob(store, name, size, final)) is not None:
        return linked, True
    tmp = final.with_name(f".{final.name}.{os.getpid()}.{threading.get_ident()}.part")
    digest = hashlib.sha256()
    with tmp.open("wb", buffering=0) as out:
        fd = out.fileno()
        preallocate(fd, size)
        # Through the page cache (a restore soon after reads it from there, as `age -d` reads its
        # archive), with writeback started as it goes so the one sync at the end waits little.
        writeback, position = Writeback(fd), 0
        for piece in _blob_pieces(store, name, size):
            digest.update(piece)
            while piece:
                written = os.write(fd, piece)
                piece, position = piece[written:], position + written
            writeback.advance(position)
    os.replace(tmp, final)
    return digest.hexdigest(), True


def _write_sidecars(dest_blobs: Path, fresh: list[tuple[str, str]]) -> list[Path]:
    """The `.sha256` beside each blob copied now (after the sync that made the blobs durable)."""
    written = []
    for name, digest in fresh:
        sidecar = dest_blobs / f"{name}.sha256"
        sidecar.write_text(digest)
        written.append(sidecar)
    return written


def create(dest: Path, *, progress: Progress = _quiet, link: bool = False) -> CreatedSet:
    """Write a new backup set into `dest` (created if missing) while the portal runs (`link`:
    hard-link blobs from a blob store on the same disk; for a spool, not a backup)."""
    from casebridge.audit.api import record
    from casebridge.kernel.backends import BlobNotFound
    from casebridge.vault.config import blob_store
    from casebridge.vault.keyring import get_keyring

    started = time.monotonic()
    dest = dest.resolve()
    for sub in ("blobs", "sets"):
        (dest / sub).mkdir(parents=True, exist_ok=True)
    with _locked(dest):
        for stale in (dest / "sets").glob(".*.partial"):
            shutil.rmtree(stale)  # an interrupted run: its blobs stay and are not copied again
        set_id = f"{timezone.now():%Y%m%dT%H%M%SZ}-{secrets.token_hex(3)}"
        partial = dest / "sets" / f".{set_id}.partial"
        partial.mkdir()
        progress("database", 0, 1)
        engine = _database()["ENGINE"]
        if engine.endswith("sqlite3"):
            snap = _snapshot_sqlite(partial / "database.sqlite3")
        elif "postgresql" in engine:
            snap = _snapshot_postgresql(partial / "database.pgdump")
        else:
            raise BackupError(f"no backup engine for the database {engine}")
        progress("database", 1, 1)
        total = sum(size for _, size in snap.blobs)
        done, copied, copied_bytes = 0, 0, 0
        entries, missing, fresh = [], [], []
        store = blob_store()

        def copy(blob: tuple[str, int]) -> tuple[str, bool] | None:
            try:
                return _copy_blob(store, blob[0], blob[1], dest / "blobs", link=link)
            except BlobNotFound:
                return None  # shredded since the snapshot, or lost: the restore names its file

        for (name, size), outcome in _in_parallel(snap.blobs, copy):
            if outcome is None:
                missing.append(name)
                continue
            digest, is_new = outcome
            entries.append([name, size, digest])
            if is_new:
                fresh.append((name, digest))
                copied += 1
                copied_bytes += size
            done += size
            progress("files", done, total)
        # Every blob copied now is on disk before a sidecar or a manifest names it: one sync of
        # the destination for all of them (not an fsync per blob), then the sidecars.
        if fresh:
            sync_under(dest / "blobs", [dest / "blobs" / name for name, _ in fresh])
        sidecars = _write_sidecars(dest / "blobs", fresh)
        database_file = partial / snap.file
        manifest = {
            "format": FORMAT,
            "set": set_id,
            "created_at": timezone.now().isoformat(),
            "database": {
                "engine": snap.engine,
                "file": snap.file,
                "size": database_file.stat().st_size,
                "sha256": _sha256_file(database_file),
            },
            "blobs": entries,
            "missing_at_source": missing,
            "events": snap.events,
            "newest_event_at": snap.newest_event_at,
        }
        body = json.dumps(manifest, sort_keys=True, indent=0).encode()
        key = get_keyring().signing_key()
        (partial / "manifest.json").write_bytes(body)
        signature = {"key_id": key.key_id, "signature": key.private.sign(body).hex()}
        (partial / "manifest.sig.json").write_text(json.dumps(signature))
        # The sidecars, the set's files and its folder are on disk before the set is renamed in.
        sync_under(dest, [*sidecars, *partial.iterdir(), partial])
        final = dest / "sets" / set_id
        os.replace(partial, final)
        _fsync_dir(dest / "sets")
    result = CreatedSet(set_id, final, len(entries), copied, copied_bytes, total, time.monotonic() - started, missing)
    record(
        "backup.created",
        actor=_operator("backup create"),
        details={
            "set": set_id,
            "files": len(entries),
            "copied": copied,
            "bytes_copied": copied_bytes,
            "missing": len(missing),
        },
    )
    return result


def prune(dest: Path, older_than_days: int) -> tuple[list[str], int]:
    """Remove the sets of a folder destination older than the window (never the newest), then the
    blobs no remaining set names: (sets removed, blobs removed). This is how a crypto-shredded
    file's wrapped key, and its ciphertext, leave the backups (docs/backups.md)."""
    from datetime import timedelta

    dest = dest.resolve()
    if not (dest / "sets").is_dir():
        return [], 0
    cutoff = timezone.now() - timedelta(days=older_than_days)
    with _locked(dest):
        available = sets(dest)
        old = [
            s
            for s in available[:-1]
            if datetime.strptime(s.split("-", 1)[0], "%Y%m%dT%H%M%SZ").replace(tzinfo=UTC) < cutoff
        ]
        for set_id in old:
            shutil.rmtree(dest / "sets" / set_id)
        keep: set[str] = set()
        for set_id in sets(dest):
            manifest = json.loads((dest / "sets" / set_id / "manifest.json").read_text())
            keep.update(name for name, _size, _digest in manifest["blobs"])
        removed = 0
        blobs = dest / "blobs"
        for path in list(blobs.rglob("*")) if old else []:
            if path.is_file() and path.relative_to(blobs).as_posix().removesuffix(".sha256") not in keep:
                removed += not path.name.endswith(".sha256")
                path.unlink()
    return old, removed


def spooled(destination: str, progress: Progress = _quiet) -> CreatedSet:
    """A new set in the spool of a remote destination (restic, S3), under CASEBRIDGE_HOME: blobs
    hard-linked from a blob store on the same disk (copied otherwise), so a run hashes only new
    blobs; afterwards the spool holds this set and its blobs only, which is what gets shipped."""
    spool = Path(settings.HOME) / "backup-spool" / hashlib.sha256(destination.encode()).hexdigest()[:16]
    spool.mkdir(parents=True, exist_ok=True, mode=0o700)
    made = create(spool, progress=progress, link=True)
    keep = {name for name, _size, _digest in json.loads((made.path / "manifest.json").read_text())["blobs"]}
    for old in (spool / "sets").iterdir():
        if old.name != made.set_id:
            shutil.rmtree(old)
    blobs = spool / "blobs"
    for path in list(blobs.rglob("*")):
        if path.is_file() and path.relative_to(blobs).as_posix().removesuffix(".sha256") not in keep:
            path.unlink()
    return made


def _operator(command: str) -> Any:
    from casebridge.access.operator import Operator

    return Operator.running(command)


# --- reading a set --------------------------------------------------------------------------
def sets(src: Path) -> list[str]:
    """Complete sets in `src`, oldest first."""
    folder = src / "sets"
    if not folder.is_dir():
        return []
    return sorted(p.name for p in folder.iterdir() if p.is_dir() and not p.name.startswith("."))


@dataclass(frozen=True)
class SetOnDisk:
    path: Path
    manifest: dict[str, Any]


def open_set(src: Path, keys: ExportedKeys, set_id: str | None = None) -> SetOnDisk:
    """The set (the newest by default) after checking its manifest's signature against the keys."""
    from cryptography.exceptions import InvalidSignature

    from casebridge.vault.keyring import Keyring, KeyringError

    available = sets(src)
    if not available:
        raise BackupError(f"{src} holds no complete backup set")
    chosen = set_id or available[-1]
    if chosen not in available:
        raise BackupError(f"{src} has no set {chosen!r} (it has: {', '.join(available)})")
    path = src / "sets" / chosen
    try:
        body = (path / "manifest.json").read_bytes()
        signature = json.loads((path / "manifest.sig.json").read_text())
    except (OSError, ValueError) as exc:
        raise BackupError(f"set {chosen} has no readable manifest: {exc}") from exc
    try:
        public = Keyring(Path("exported keys"), keys.keyring).verification_keys()
    except KeyringError as exc:
        raise BackupError(f"the key export holds no usable keyring: {exc}") from exc
    key = public.get(signature.get("key_id"))
    if key is None:
        raise BackupError(f"set {chosen} was signed with a key these exported keys do not hold: wrong key file?")
    try:
        key.verify(bytes.fromhex(signature["signature"]), body)
    except (InvalidSignature, ValueError):
        raise BackupError(f"the manifest of set {chosen} does not match its signature: it was altered") from None
    manifest = json.loads(body)
    if manifest.get("format") != FORMAT:
        raise BackupError(f"set {chosen} is in format {manifest.get('format')!r}, not {FORMAT}")
    return SetOnDisk(path, manifest)


# --- restoring ------------------------------------------------------------------------------
@dataclass
class RestoreReport:
    set_id: str
    files: int = 0
    bytes: int = 0
    missing_blobs: list[str] = field(default_factory=list)
    damaged_blobs: list[str] = field(default_factory=list)
    affected: list[dict[str, Any]] = field(default_factory=list)  # files and cases the bad blobs belong to
    sessions_ended: int = 0
    tokens_revoked: int = 0
    uploads_dropped: int = 0
    files_checked: int = 0
    files_failed: list[str] = field(default_factory=list)
    audit_ok: bool = False
    audit_problem: str = ""
    events: int = 0
    newest_event_at: str | None = None
    seconds: float = 0.0

    @property
    def ok(self) -> bool:
        return not (self.missing_blobs or self.damaged_blobs or self.files_failed) and self.audit_ok

    def as_dict(self) -> dict[str, Any]:
        return {**self.__dict__, "ok": self.ok}


def target_in_use() -> list[str]:
    """What in this installation would be overwritten by a restore (empty: safe to restore)."""
    from casebridge.vault.config import blob_store

    found = []
    db = _database()
    if db["ENGINE"].endswith("sqlite3"):
        name = Path(str(db["NAME"]))
        if name.exists() and name.stat().st_size > 0:
            with contextlib.closing(sqlite3.connect(str(name))) as conn:
                tables = conn.execute(
                    "SELECT count(*) FROM sqlite_master WHERE type='table' AND name='vault_objectversion'"
                ).fetchone()[0]
                if tables and conn.execute("SELECT count(*) FROM accounts_user").fetchone()[0]:
                    found.append(f"the database {name} has accounts")
    else:
        import psycopg

        with psycopg.connect(_pg_url()) as conn:
            row = conn.execute(
                "SELECT count(*) FROM information_schema.tables WHERE table_schema = 'public'"
            ).fetchone()
            if row and row[0]:
                found.append(f"the PostgreSQL database {db['NAME']} has tables")
    root = getattr(blob_store(), "root", None)
    if root is not None and any(p.is_file() for p in Path(root).rglob("*") if ".staging" not in p.parts):
        found.append(f"the blob store {root} holds files")
    if Path(settings.KEYRING_PATH).exists():
        found.append(f"a keyring exists at {settings.KEYRING_PATH}")
    return found


def _install_database(chosen: SetOnDisk) -> None:
    from django.db import connections

    info = chosen.manifest["database"]
    source = chosen.path / info["file"]
    if not source.exists() or _sha256_file(source) != info["sha256"]:
        raise BackupError(f"the database copy in set {chosen.manifest['set']} is missing or damaged")
    connections.close_all()
    db = _database()
    if info["engine"] == "sqlite":
        if not db["ENGINE"].endswith("sqlite3"):
            raise BackupError("this set holds a SQLite database; restore it into an installation that uses SQLite")
        target = Path(str(db["NAME"]))
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = target.with_name(f".{target.name}.restoring")
        shutil.copyfile(source, tmp)
        with tmp.open("rb") as handle:
            os.fsync(handle.fileno())
        for suffix in ("-wal", "-shm"):
            with contextlib.suppress(FileNotFoundError):
                target.with_name(target.name + suffix).unlink()
        os.replace(tmp, target)
        return
    if "postgresql" not in db["ENGINE"]:
        raise BackupError("this set holds a PostgreSQL dump; restore it into an installation that uses PostgreSQL")
    pg_restore = shutil.which("pg_restore")
    if pg_restore is None:
        raise BackupError("pg_restore is not installed (Debian: apt-get install postgresql-client)")
    done = run_tool(
        [pg_restore, "--no-owner", "--exit-on-error", "--clean", "--if-exists", "--dbname", _pg_url(), str(source)]
    )
    if done.returncode != 0:
        raise BackupError(f"pg_restore failed: {done.stderr.strip()[:500]}")


def _install_blob(store: Any, src: Path, name: str, size: int, expected: str) -> str:
    """Copy one blob of the set into the store, hashing it on the way: "installed", "missing"
    (not in the set's folder) or "damaged" (not its recorded SHA-256: not installed). Committed
    with durable=False: the caller syncs the store once for all of them."""
    path = src / "blobs" / name
    if not path.is_file():
        return "missing"
    view = _copy_buffer()
    digest = hashlib.sha256()
    writer = store.open_writer(name, size_hint=size, durable=False)
    try:
        with open(path, "rb", buffering=0) as handle:
            while got := read_full(handle, view):
                digest.update(view[:got])
                # Read-only: the store writes it through the page cache (not around it, as it
                # does aligned buffers), where prove() reads it back moments later.
                writer.write(view[:got].toreadonly())
    except BaseException:
        writer.abort()
        raise
    if digest.hexdigest() != expected:
        writer.abort()  # a damaged copy is not installed: the file is reported instead
        return "damaged"
    writer.commit()
    return "installed"


def _install_blobs(chosen: SetOnDisk, src: Path, report: RestoreReport, progress: Progress) -> None:
    from casebridge.vault.config import blob_store

    store = blob_store()
    entries = chosen.manifest["blobs"]
    total = sum(size for _, size, _ in entries)
    done = 0
    installed = []
    for (name, size, _digest), outcome in _in_parallel(entries, lambda e: _install_blob(store, src, *e)):
        if outcome == "missing":
            report.missing_blobs.append(name)
            continue
        if outcome == "damaged":
            report.damaged_blobs.append(name)
            continue
        installed.append(name)
        report.files += 1
        report.bytes += size
        done += size
        progress("files", done, total)
    # One barrier for every blob, before the keys are installed and anything is proved or
    # declared restored (a crash before it leaves an installation without keys: restore again).
    store.sync(installed)
    report.missing_blobs.extend(chosen.manifest.get("missing_at_source", []))


def _affected(names: list[str]) -> list[dict[str, Any]]:
    """The files (and their cases) whose ciphertext could not be restored: what to tell people."""
    from casebridge.cases.models import Attachment
    from casebridge.vault.models import ObjectVersion

    rows = []
    for version in ObjectVersion.objects.filter(blob_name__in=names).select_related("stored_object"):
        cases = sorted(
            Attachment.objects.filter(stored_object=version.stored_object_id).values_list("case__number", flat=True)
        )
        rows.append({"file": str(version.stored_object_id), "version": version.version, "cases": cases})
    return rows


def _end_credentials(report: RestoreReport) -> None:
    """Sessions and tokens issued before the backup are not revived silently: every session ends,
    every token that was live in the backup is revoked (one revoked after the backup was taken
    would otherwise work again); people sign in again and owners issue new tokens."""
    from django.contrib.sessions.models import Session

    from casebridge.accounts.models import ApiToken

    report.sessions_ended = Session.objects.all().delete()[0]
    with contextlib.suppress(LookupError):
        from django.apps import apps

        apps.get_model("usersessions", "UserSession").objects.all().delete()
    report.tokens_revoked = ApiToken.objects.filter(revoked_at__isnull=True).update(revoked_at=timezone.now())


def _drop_unfinished_uploads(report: RestoreReport) -> None:
    """Uploads that were half done when the backup ran: their staged bytes are not in a set (only
    finished files are), so their rows would promise an offset nothing backs. They are removed;
    a resuming client's HEAD gets 404 and it starts the upload again (tus)."""
    from casebridge.vault.models import Upload

    report.uploads_dropped = Upload.objects.filter(completed_at__isnull=True).delete()[0]


def prove(report: RestoreReport, progress: Progress = _quiet) -> None:
    """Every live file decrypts (its authentication tags all check) to its recorded SHA-256; the
    audit chain and its signed checkpoints verify. Files are checked WORKERS at a time: each
    one's key is unwrapped here (the database), its decryption and hashing run in a thread."""
    from casebridge.audit.chain import verify as verify_chain
    from casebridge.vault import api as vault
    from casebridge.vault.models import ObjectVersion

    versions = list(ObjectVersion.objects.filter(wrapped_dek__isnull=False).select_related("stored_object", "base"))
    skip = set(report.missing_blobs) | set(report.damaged_blobs)

    def opened() -> Iterator[tuple[ObjectVersion, Iterator[memoryview] | Exception]]:
        for version in versions:
            if version.blob_name in skip:
                continue
            try:
                yield version, vault.read_version(version)  # unwraps the key; reads nothing yet
            except Exception as exc:  # any failure to decrypt is a failed restore, named by file
                yield version, exc

    def check(item: tuple[ObjectVersion, Iterator[memoryview] | Exception]) -> str | None:
        version, segments = item
        if isinstance(segments, Exception):
            return type(segments).__name__
        digest = hashlib.sha256()
        try:
            for segment in segments:
                digest.update(segment)
        except Exception as exc:  # any failure to decrypt is a failed restore, named by file
            return type(exc).__name__
        return None if digest.hexdigest() == version.sha256 else "content differs"

    for n, ((version, _), problem) in enumerate(_in_parallel(opened(), check), 1):
        if problem is not None:
            report.files_failed.append(f"{version.stored_object_id} v{version.version}: {problem}")
        if problem is None or problem == "content differs":
            report.files_checked += 1
        progress("checking", n, len(versions))
    # A restore brings back an earlier copy on purpose: the live witness folder's later
    # checkpoints are not a rollback here (audit/witness.py; docs/backups.md).
    chain = verify_chain(witnesses=False)
    report.audit_ok, report.audit_problem = chain.ok, chain.problem


def restore(
    src: Path, keys: ExportedKeys, *, set_id: str | None = None, force: bool = False, progress: Progress = _quiet
) -> RestoreReport:
    """Bring back the set into this (empty) installation and prove it; see the module docstring."""
    from django.core.management import call_command

    from casebridge.audit.api import record
    from casebridge.vault import keyring
    from casebridge.vault.config import reset_caches
    from casebridge.vault.keyexport import install

    started = time.monotonic()
    src = src.resolve()
    chosen = open_set(src, keys, set_id)
    in_use = target_in_use()
    if in_use and not force:
        raise BackupError(
            "this installation is not empty (" + "; ".join(in_use) + "): restore into an empty CASEBRIDGE_HOME "
            "(and a fresh database), or pass --force to overwrite it"
        )
    report = RestoreReport(chosen.manifest["set"])
    report.events = int(chosen.manifest.get("events", 0))
    report.newest_event_at = chosen.manifest.get("newest_event_at")
    _install_database(chosen)
    _install_blobs(chosen, src, report, progress)
    install(keys)
    reset_caches()
    keyring.forget_loaded()
    call_command("migrate", verbosity=0)  # a set from an older release gains the newer tables
    _end_credentials(report)
    _drop_unfinished_uploads(report)
    report.affected = _affected(report.missing_blobs + report.damaged_blobs)
    prove(report, progress)
    report.seconds = time.monotonic() - started
    record(
        "backup.restored",
        actor=_operator("backup restore"),
        details={
            "set": report.set_id,
            "files": report.files,
            "missing": len(report.missing_blobs),
            "damaged": len(report.damaged_blobs),
            "sessions_ended": report.sessions_ended,
            "tokens_revoked": report.tokens_revoked,
            "uploads_dropped": report.uploads_dropped,
            "ok": report.ok,
        },
    )
    return report
