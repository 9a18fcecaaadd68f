"""casebridge backup create|restore|verify|list: backups that restore, and proof that they do."""

from __future__ import annotations

import contextlib
import getpass
import json
import os
import secrets
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.utils import timezone

from casebridge.retention import backup, restic, s3
from casebridge.vault.keyexport import ExportedKeys, KeyExportError, open_sealed

UNLOCK_ENV = "CASEBRIDGE_KEYS_PASSPHRASE"


def read_passphrase(options: dict[str, Any], *, confirm: bool = False) -> str:
    """From --passphrase-file, else CASEBRIDGE_KEYS_PASSPHRASE, else asked on the terminal."""
    if options.get("passphrase_file"):
        try:
            return Path(options["passphrase_file"]).read_text().rstrip("\n")
        except OSError as exc:
            raise CommandError(f"cannot read the passphrase file: {exc}") from exc
    if os.environ.get(UNLOCK_ENV):
        return os.environ[UNLOCK_ENV]
    if not sys.stdin.isatty():
        raise CommandError(f"no passphrase: pass --passphrase-file FILE or set {UNLOCK_ENV}")
    first = getpass.getpass("Passphrase of the key export: ")
    if confirm and getpass.getpass("The same passphrase again: ") != first:
        raise CommandError("the two passphrases differ; nothing was written")
    return first


def load_keys(options: dict[str, Any]) -> ExportedKeys:
    try:
        data = Path(options["keys"]).read_bytes()
    except OSError as exc:
        raise CommandError(f"cannot read the key export {options['keys']}: {exc}") from exc
    try:
        return open_sealed(data, read_passphrase(options))
    except KeyExportError as exc:
        raise CommandError(str(exc)) from exc


class _Bar:
    """A progress bar on stderr (only on a terminal, so logs and scripts stay clean)."""

    def __init__(self, enabled: bool) -> None:
        self.enabled = enabled
        self.phase = ""

    def __call__(self, phase: str, done: int, total: int) -> None:
        if not self.enabled:
            return
        width = 30
        filled = int(width * done / total) if total else width
        unit = f"{done / 1e6:,.0f}/{total / 1e6:,.0f} MB" if phase == "files" else f"{done}/{total}"
        sys.stderr.write(f"\r  {phase:<9}[{'#' * filled}{'.' * (width - filled)}] {unit}   ")
        if done >= total:
            sys.stderr.write("\n")
        sys.stderr.flush()


class Command(BaseCommand):
    help = "Write, restore and test backups (database, encrypted files, signed manifest; keys apart)."
    # Django's system checks import every URL and view (pydicom, the API schema...): about 2 s of a
    # 3 s `backup create` that copies nothing new (bench/backup_incremental.py). A backup touches no
    # URL, and the scheduled runs start from a worker whose own start ran the checks already.
    requires_system_checks: list[str] = []

    def add_arguments(self, parser: CommandParser) -> None:
        sub = parser.add_subparsers(dest="operation", required=True)
        create = sub.add_parser(
            "create",
            help="write a backup set into DEST while the portal runs (only files not already there are copied)",
        )
        create.add_argument(
            "dest", help="a folder, ideally on another disk or machine, or restic:<repository> (docs/backups.md)"
        )
        prune = sub.add_parser(
            "prune", help="remove the sets of a backup folder older than N days (never the newest) and unused blobs"
        )
        prune.add_argument("dest")
        prune.add_argument("--older-than-days", type=int, required=True)
        listing = sub.add_parser("list", help="the backup sets in SRC")
        listing.add_argument("src")
        for name, text in (
            ("restore", "restore a set into this (empty) installation and prove every file and the audit chain"),
            ("verify", "restore a set into a scratch place, prove it, record the result and its RTO/RPO"),
        ):
            p = sub.add_parser(name, help=text)
            p.add_argument("src", help="the backup folder, or restic:<repository>")
            p.add_argument("--keys", required=True, help="the file `casebridge keys export` wrote")
            p.add_argument("--passphrase-file", help=f"file holding the key export's passphrase (or {UNLOCK_ENV})")
            p.add_argument("--set", dest="set_id", help="which set (default: the newest)")
            p.add_argument("--json", action="store_true", help="print the report as JSON")
        sub.choices["restore"].add_argument(
            "--force", action="store_true", help="overwrite an installation that is not empty"
        )

    def handle(self, *args: Any, **options: Any) -> None:
        operation = options["operation"]
        bar = _Bar(sys.stderr.isatty())
        if operation == "create":
            if restic.is_restic(options["dest"]):
                self._create_restic(options["dest"], bar)
            elif s3.is_s3(options["dest"]):
                self._create_s3(options["dest"], bar)
            else:
                self._create(Path(options["dest"]), bar)
        elif operation == "prune":
            self._prune(Path(options["dest"]), options["older_than_days"])
        elif operation == "list":
            try:
                if restic.is_restic(options["src"]):
                    listed = restic.set_ids(options["src"])
                elif s3.is_s3(options["src"]):
                    listed = s3.set_ids(options["src"])
                else:
                    listed = backup.sets(Path(options["src"]))
            except backup.BackupError as exc:
                raise CommandError(str(exc)) from exc
            for set_id in listed:
                self.stdout.write(set_id)
        elif operation == "restore":
            self._restore(options, bar)
        else:
            self._verify(options)

    def _create(self, dest: Path, bar: _Bar) -> None:
        from casebridge.retention.models import BackupRun, RunKind

        started = timezone.now()
        run = BackupRun.objects.create(kind=RunKind.BACKUP, destination=str(dest.resolve()), started_at=started)
        try:
            made = backup.create(dest, progress=bar)
        except (backup.BackupError, OSError) as exc:
            run.problem, run.finished_at = str(exc)[:500], timezone.now()
            run.save(update_fields=["problem", "finished_at"])
            raise CommandError(str(exc)) from exc
        run.set_id, run.ok, run.files, run.bytes_copied = made.set_id, not made.missing, made.blobs, made.bytes_copied
        run.finished_at = timezone.now()
        if made.missing:
            run.problem = f"{len(made.missing)} file(s) were gone from the blob store"
        run.save()
        self.stdout.write(
            f"backup set {made.set_id}: {made.blobs} file(s), {made.blobs_copied} copied now "
            f"({made.bytes_copied / 1e6:,.1f} MB of {made.bytes_total / 1e6:,.1f} MB), {made.seconds:.2f} s"
        )
        if made.missing:
            self.stderr.write(f"warning: {len(made.missing)} file(s) were missing from the blob store")
        self.stdout.write("Keys are not in a backup: keep the file of `casebridge keys export` somewhere else.")
        if settings.BACKUP_FOLDER_KEEP_DAYS > 0:
            self._prune(dest, settings.BACKUP_FOLDER_KEEP_DAYS)

    def _prune(self, dest: Path, days: int) -> None:
        from casebridge.audit.api import record
        from casebridge.retention.backup import _operator

        if days < 0:
            raise CommandError("--older-than-days must be 0 or more")
        try:
            removed, blobs = backup.prune(dest, days)
        except backup.BackupError as exc:
            raise CommandError(str(exc)) from exc
        if removed:
            record("backup.pruned", actor=_operator("backup prune"), details={"sets": removed, "blobs": blobs})
        self.stdout.write(f"removed {len(removed)} set(s) older than {days} day(s) and {blobs} unused file(s)")

    def _create_restic(self, dest: str, bar: _Bar) -> None:
        from casebridge.retention.models import BackupRun, RunKind

        try:
            label = restic.Repository.parse(dest).label
        except backup.BackupError as exc:
            raise CommandError(str(exc)) from exc
        run = BackupRun.objects.create(kind=RunKind.BACKUP, destination=label, started_at=timezone.now())
        try:
            made = restic.create(dest, progress=bar)
        except (backup.BackupError, OSError) as exc:
            run.problem, run.finished_at = str(exc)[:500], timezone.now()
            run.save(update_fields=["problem", "finished_at"])
            raise CommandError(str(exc)) from exc
        run.set_id, run.ok, run.files = made.made.set_id, not made.made.missing, made.made.blobs
        run.bytes_copied, run.finished_at = made.data_added, timezone.now()
        if made.made.missing:
            run.problem = f"{len(made.made.missing)} file(s) were gone from the blob store"
        run.save()
        self.stdout.write(
            f"backup set {made.made.set_id} in {label}: snapshot {made.snapshot}, {made.made.blobs} file(s), "
            f"{made.files_new} new to restic, {made.data_added / 1e6:,.1f} MB added to the repository, "
            f"{made.seconds:.1f} s" + ("; old snapshots forgotten and pruned" if made.forgot else "")
        )
        if made.made.missing:
            self.stderr.write(f"warning: {len(made.made.missing)} file(s) were missing from the blob store")
        self.stdout.write("Keys are not in a backup: keep the file of `casebridge keys export` somewhere else.")

    def _create_s3(self, dest: str, bar: _Bar) -> None:
        from casebridge.retention.models import BackupRun, RunKind

        label = dest.rstrip("/")
        run = BackupRun.objects.create(kind=RunKind.BACKUP, destination=label, started_at=timezone.now())
        try:
            made = s3.create(dest, progress=bar)
        except (backup.BackupError, OSError) as exc:
            run.problem, run.finished_at = str(exc)[:500], timezone.now()
            run.save(update_fields=["problem", "finished_at"])
            raise CommandError(str(exc)) from exc
        run.set_id, run.ok, run.files = made.made.set_id, not made.made.missing, made.made.blobs
        run.bytes_copied, run.finished_at = made.uploaded_bytes, timezone.now()
        if made.made.missing:
            run.problem = f"{len(made.made.missing)} file(s) were gone from the blob store"
        run.save()
        locked = f"; locked until {made.locked_until:%Y-%m-%d}" if made.locked_until else "; no object lock"
        self.stdout.write(
            f"backup set {made.made.set_id} in {label}: {made.made.blobs} file(s), {made.uploaded} uploaded now "
            f"({made.uploaded_bytes / 1e6:,.1f} MB){locked}"
        )
        if made.made.missing:
            self.stderr.write(f"warning: {len(made.made.missing)} file(s) were missing from the blob store")
        self.stdout.write("Keys are not in a backup: keep the file of `casebridge keys export` somewhere else.")

    def _restore(self, options: dict[str, Any], bar: _Bar) -> None:
        keys = load_keys(options)
        try:
            with _source(options["src"], options["set_id"]) as (src, set_id):
                report = backup.restore(src, keys, set_id=set_id, force=options["force"], progress=bar)
        except backup.BackupError as exc:
            raise CommandError(str(exc)) from exc
        if options["json"]:
            self.stdout.write(json.dumps(report.as_dict()))
        else:
            self._describe(report)
        if not report.ok:
            raise CommandError("the restore is incomplete: see above")

    def _describe(self, report: backup.RestoreReport) -> None:
        self.stdout.write(
            f"restored set {report.set_id}: {report.files} file(s), {report.bytes / 1e6:,.1f} MB, "
            f"{report.events} audit event(s), in {report.seconds:.1f} s"
        )
        self.stdout.write(f"checked {report.files_checked} file(s): each decrypts to its recorded SHA-256")
        self.stdout.write(
            f"audit chain: {'verified' if report.audit_ok else 'FAILED: ' + report.audit_problem}; "
            f"{report.sessions_ended} session(s) ended, {report.tokens_revoked} API token(s) revoked "
            "(people sign in again; owners issue new tokens)"
        )
        for name in report.missing_blobs:
            self.stderr.write(f"missing from the backup: {name}")
        for name in report.damaged_blobs:
            self.stderr.write(f"damaged in the backup (hash differs): {name}")
        for row in report.affected:
            where = ", ".join(row["cases"]) or "no case"
            self.stderr.write(f"  file {row['file']} version {row['version']} is lost (cases: {where})")
        for line in report.files_failed:
            self.stderr.write(f"does not decrypt to its recorded content: {line}")

    def _verify(self, options: dict[str, Any]) -> None:
        """Restore into a scratch CASEBRIDGE_HOME (and a scratch PostgreSQL database when the set
        holds a dump) in a child process, then record the result as evidence. A restic repository
        is checked (`restic check`) and its snapshot written out first; a failure there is a
        failed restore test too."""
        from casebridge.audit.api import record
        from casebridge.retention.backup import _operator
        from casebridge.retention.models import BackupRun, RunKind

        keys = load_keys(options)  # the passphrase is checked here, before anything starts
        clock = time.monotonic()
        try:
            with _source(options["src"], options["set_id"], check=True) as (src, set_id):
                chosen = backup.open_set(src, keys, set_id)
                self._verify_set(options, src, chosen, clock)
        except backup.BackupError as exc:
            if restic.is_restic(options["src"]):  # the repository itself failed: evidence and an alert
                now = timezone.now()
                label = restic.Repository.parse(options["src"]).label
                run = BackupRun.objects.create(
                    kind=RunKind.RESTORE_TEST,
                    destination=label,
                    started_at=now,
                    finished_at=now,
                    problem=str(exc)[:500],
                    rto_seconds=time.monotonic() - clock,
                )
                record("backup.verify_failed", actor=_operator("backup verify"), details={"ok": False})
                _alert(run)
            raise CommandError(str(exc)) from exc

    def _verify_set(self, options: dict[str, Any], src: Path, chosen: backup.SetOnDisk, clock: float) -> None:
        from casebridge.audit.api import record
        from casebridge.retention.backup import _operator
        from casebridge.retention.models import BackupRun, RunKind

        started = timezone.now()
        where = str(src)
        if restic.is_restic(options["src"]):
            where = restic.Repository.parse(options["src"]).label
        elif s3.is_s3(options["src"]):
            where = options["src"].rstrip("/")
        run = BackupRun.objects.create(
            kind=RunKind.RESTORE_TEST, destination=where, set_id=chosen.manifest["set"], started_at=started
        )
        scratch = Path(tempfile.mkdtemp(prefix="restore-test-", dir=settings.HOME))
        env = {**os.environ, "CASEBRIDGE_HOME": str(scratch), UNLOCK_ENV: read_passphrase(options)}
        for private in ("CASEBRIDGE_STORAGE_URL", "CASEBRIDGE_KEYRING", "CASEBRIDGE_SECRET_KEY", "DATABASE_URL"):
            env.pop(private, None)
        scratch_db = ""
        if chosen.manifest["database"]["engine"] == "postgresql":
            scratch_db = f"casebridge_restore_test_{secrets.token_hex(4)}"
            env["DATABASE_URL"] = _scratch_database(scratch_db)
        try:
            done = subprocess.run(  # noqa: S603 - our interpreter and command; the paths were given to us
                [
                    sys.executable,
                    "-m",
                    "casebridge.cli",
                    "backup",
                    "restore",
                    str(src),
                    "--keys",
                    str(Path(options["keys"]).resolve()),
                    "--set",
                    chosen.manifest["set"],
                    "--json",
                ],
                env=env,
                capture_output=True,
                text=True,
                check=False,
                timeout=72 * 3600,
            )
        finally:
            rto = time.monotonic() - clock
            shutil.rmtree(scratch, ignore_errors=True)
            if scratch_db:
                _drop_database(scratch_db)
        report: dict[str, Any] = {}
        for line in reversed(done.stdout.splitlines()):
            if line.startswith("{"):
                report = json.loads(line)
                break
        newest = chosen.manifest.get("newest_event_at")
        rpo = (timezone.now() - datetime.fromisoformat(newest)).total_seconds() if newest else None
        ok = bool(report.get("ok")) and done.returncode == 0
        problem = ""
        if not ok:
            last_words = done.stderr.strip().splitlines()
            problem = _first_problem(report) or (last_words[-1] if last_words else "the restore did not finish")
        run.ok, run.finished_at, run.rto_seconds, run.rpo_seconds = ok, timezone.now(), rto, rpo
        run.files, run.problem = int(report.get("files", 0)), str(problem)[:500]
        run.save()
        record(
            "backup.verified" if ok else "backup.verify_failed",
            actor=_operator("backup verify"),
            details={"set": run.set_id, "rto_seconds": round(rto, 1), "files": run.files, "ok": ok},
        )
        if not ok:
            _alert(run)
        if options["json"]:
            self.stdout.write(json.dumps({**report, "ok": ok, "rto_seconds": rto, "rpo_seconds": rpo}))
        else:
            age = f"{rpo / 3600:.1f} h" if rpo is not None else "unknown"
            self.stdout.write(
                f"restore test of set {run.set_id}: {'PASSED' if ok else 'FAILED'} in {rto:.1f} s "
                f"(RTO); newest data in it {age} old (RPO); {run.files} file(s)"
            )
        if not ok:
            raise CommandError(f"the restore test failed: {problem}")


@contextlib.contextmanager
def _source(src: str, set_id: str | None, *, check: bool = False) -> Iterator[tuple[Path, str | None]]:
    """A backup folder to read from: the folder given, or a restic snapshot written out into a
    scratch folder (`restic check` first when `check`), or a set downloaded from a bucket,
    removed afterwards."""
    if restic.is_restic(src):
        with restic.materialized(src, set_id, check=check) as (folder, chosen):
            yield folder, chosen
    elif s3.is_s3(src):
        with s3.materialized(src, set_id) as (folder, chosen):
            yield folder, chosen
    else:
        yield Path(src).resolve(), set_id


def _first_problem(report: dict[str, Any]) -> str:
    if report.get("missing_blobs"):
        return f"{len(report['missing_blobs'])} file(s) missing from the backup"
    if report.get("damaged_blobs"):
        return f"{len(report['damaged_blobs'])} file(s) damaged in the backup"
    if report.get("files_failed"):
        return f"{len(report['files_failed'])} file(s) do not decrypt to their content"
    if report and not report.get("audit_ok"):
        return f"audit chain: {report.get('audit_problem')}"
    return ""


def _scratch_database(name: str) -> str:
    import psycopg

    from casebridge.retention.backup import _pg_url

    base = _pg_url()
    with psycopg.connect(base, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    return base.rsplit("/", 1)[0] + f"/{name}"


def _drop_database(name: str) -> None:
    import psycopg

    from casebridge.retention.backup import _pg_url

    with psycopg.connect(_pg_url(), autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def _alert(run: Any) -> None:
    """A failed restore test is an incident in the making: tell the operators (no PHI: the set id,
    the reason, when)."""
    from django.core.mail import mail_admins

    mail_admins(
        "CaseBridge restore test failed",
        f"The restore test of backup set {run.set_id} failed at {run.finished_at:%Y-%m-%d %H:%M} UTC: "
        f"{run.problem}\nRun `casebridge backup verify` by hand to see the whole report.",
        fail_silently=True,
    )
