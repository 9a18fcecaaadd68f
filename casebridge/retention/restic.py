"""Off-site copies through restic: `casebridge backup create restic:<repository>`.

restic (Debian package `restic`) keeps encrypted, deduplicated, checkable snapshots in a local
folder or anywhere it reaches (sftp:, rest:, s3:, ...). CaseBridge does not invent a format for
that: it writes the same backup set as for a folder (database copy, ciphertext blobs, signed
manifest) into a spool under CASEBRIDGE_HOME, then has restic snapshot the spool.

The spool holds the newest set only, and its blobs are hard links into the blob store (no copy,
no extra disk; a blob store elsewhere is copied instead): each run hashes only the new blobs,
restic reads only files it has not seen (same size, mtime and inode), and the repository grows
by what changed. After the snapshot, `restic forget --keep-daily/--keep-weekly --prune` applies
the retention settings, which is also the backup-retention window after which a crypto-shredded
file's wrapped key no longer exists in any set (docs/backups.md).

A restore or restore test first has restic write the chosen snapshot into a scratch folder, then
restores from that folder as from any other; a restore test runs `restic check` first.

The repository's password comes from CASEBRIDGE_RESTIC_PASSWORD_FILE (a 0600 file) or the
environment (CASEBRIDGE_RESTIC_PASSWORD, or restic's own RESTIC_PASSWORD[_FILE]); it is handed to
restic through its environment, never on a command line, and never logged. So is the
repository's location, which may carry credentials (rest:https://user:pass@host/).
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from django.conf import settings

from casebridge.retention import backup
from casebridge.retention.backup import BackupError, Progress, _quiet, run_tool

PREFIX = "restic:"
TAG = "casebridge"


def is_restic(dest: str) -> bool:
    return dest.startswith(PREFIX)


def _restic() -> str:
    binary = shutil.which("restic")
    if binary is None:
        raise BackupError("restic is not installed (Debian: apt-get install restic)")
    return binary


@dataclass(frozen=True)
class Repository:
    location: str  # what follows "restic:": a path or any restic URL

    @classmethod
    def parse(cls, dest: str) -> Repository:
        location = dest[len(PREFIX) :] if is_restic(dest) else dest
        if not location:
            raise BackupError("restic: needs a repository, e.g. restic:/mnt/offsite or restic:sftp:host:/srv/cb")
        if ":" not in location.split("/", 1)[0]:  # a local path: resolve it so the spool name is stable
            location = str(Path(location).resolve())
        return cls(location)

    @property
    def label(self) -> str:
        """How the repository is named in records and messages: its location without credentials."""
        head, sep, rest = self.location.partition("://")
        if sep and "@" in rest.split("/", 1)[0]:
            rest = rest.split("@", 1)[1]
        return f"{PREFIX}{head}{sep}{rest}"

    def _env(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("RESTIC_")}
        env["RESTIC_REPOSITORY"] = self.location
        env.setdefault("RESTIC_CACHE_DIR", str(Path(settings.HOME) / "restic-cache"))
        password_file = settings.BACKUP_RESTIC_PASSWORD_FILE or os.environ.get("RESTIC_PASSWORD_FILE", "")
        password = os.environ.get("CASEBRIDGE_RESTIC_PASSWORD") or os.environ.get("RESTIC_PASSWORD", "")
        if password_file:
            env["RESTIC_PASSWORD_FILE"] = password_file
        elif password:
            env["RESTIC_PASSWORD"] = password
        else:
            raise BackupError(
                "no restic password: set CASEBRIDGE_RESTIC_PASSWORD_FILE (a file readable by the service only) "
                "or CASEBRIDGE_RESTIC_PASSWORD"
            )
        return env

    def run(self, *args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
        done = run_tool([_restic(), *args], env=self._env(), cwd=cwd)
        if done.returncode != 0:
            raise BackupError(f"restic {args[0]} failed: {_last_words(done.stderr)}")
        return done

    def ensure(self) -> None:
        """Create the repository on first use (restic init)."""
        try:
            self.run("cat", "config")
        except BackupError:
            self.run("init")

    def backup_folder(self, folder: Path, set_id: str, progress: Progress) -> dict[str, Any]:
        """Snapshot `folder` (its contents at the snapshot's top), tagged with the set; restic's
        --json status lines drive the progress bar. Returns restic's summary."""
        summary: dict[str, Any] = {}

        def follow(line: str) -> None:
            try:
                message = json.loads(line)
            except ValueError:
                return
            if message.get("message_type") == "status":
                progress("restic", int(message.get("bytes_done", 0)), int(message.get("total_bytes", 0)) or 1)
            elif message.get("message_type") == "summary":
                summary.update(message)

        command = [_restic(), "backup", "--json", "--tag", TAG, "--tag", f"set:{set_id}", "--host", TAG, "."]
        done = run_tool(command, env=self._env(), cwd=folder, on_line=follow)
        if done.returncode != 0 or not summary:
            raise BackupError(f"restic backup failed: {_last_words(done.stderr)}")
        return summary

    def snapshots(self) -> list[tuple[str, str]]:
        """(set id, snapshot id) of every CaseBridge snapshot, oldest first."""
        listed = json.loads(self.run("snapshots", "--json", "--tag", TAG).stdout or "[]")
        found = []
        for snap in sorted(listed, key=lambda s: s["time"]):
            for tag in snap.get("tags") or []:
                if tag.startswith("set:"):
                    found.append((tag[4:], snap["short_id"]))
        return found

    def forget(self) -> str:
        """Apply the retention settings (nothing when both are 0)."""
        daily, weekly = settings.BACKUP_RESTIC_KEEP_DAILY, settings.BACKUP_RESTIC_KEEP_WEEKLY
        if not daily and not weekly:
            return ""
        args = ["forget", "--json", "--tag", TAG, "--prune"]
        args += ["--keep-daily", str(daily)] if daily else []
        args += ["--keep-weekly", str(weekly)] if weekly else []
        return self.run(*args).stdout

    def check(self, read_data_subset: str = "") -> None:
        self.run("check", *(["--read-data-subset", read_data_subset] if read_data_subset else []))


def _last_words(stderr: str) -> str:
    lines = [line for line in stderr.strip().splitlines() if line.strip()]
    return " / ".join(lines[-2:])[:500] if lines else "no message"


@dataclass
class ResticResult:
    made: backup.CreatedSet
    snapshot: str
    data_added: int
    files_new: int
    seconds: float
    forgot: bool


def create(dest: str, *, progress: Progress = _quiet) -> ResticResult:
    import time

    started = time.monotonic()
    repo = Repository.parse(dest)
    repo.ensure()
    made = backup.spooled(repo.location, progress)
    summary = repo.backup_folder(made.path.parent.parent, made.set_id, progress)
    forgot = bool(repo.forget())
    return ResticResult(
        made,
        str(summary.get("snapshot_id", "")),
        int(summary.get("data_added", 0)),
        int(summary.get("files_new", 0)),
        time.monotonic() - started,
        forgot,
    )


def set_ids(dest: str) -> list[str]:
    return [set_id for set_id, _snap in Repository.parse(dest).snapshots()]


@contextlib.contextmanager
def materialized(dest: str, set_id: str | None = None, *, check: bool = False) -> Iterator[tuple[Path, str]]:
    """The snapshot of `set_id` (default: the newest) written out as a backup folder in a
    scratch place under CASEBRIDGE_HOME, removed afterwards: (folder, set id)."""
    repo = Repository.parse(dest)
    if check:
        repo.check(settings.BACKUP_RESTIC_CHECK_READ_DATA)
    known = repo.snapshots()
    if not known:
        raise BackupError(f"{repo.label} holds no CaseBridge snapshot")
    chosen = [s for s in known if s[0] == set_id] if set_id else known[-1:]
    if not chosen:
        raise BackupError(f"{repo.label} has no set {set_id!r} (it has: {', '.join(s for s, _ in known)})")
    Path(settings.HOME).mkdir(parents=True, exist_ok=True)
    scratch = Path(tempfile.mkdtemp(prefix="restic-restore-", dir=settings.HOME))
    try:
        repo.run("restore", chosen[0][1], "--target", str(scratch))
        yield scratch, chosen[0][0]
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
