"""casebridge keys status|rotate|retire VERSION|export FILE: operate the key-encryption keys."""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.db.models import Count

from casebridge.audit.api import record
from casebridge.vault import keystore
from casebridge.vault.config import key_provider
from casebridge.vault.keys import KeyProviderError
from casebridge.vault.models import OrgKey


class Command(BaseCommand):
    help = "Rotate, retire or export the key-encryption keys. Content is never re-encrypted: only wrapped keys change."

    def add_arguments(self, parser: CommandParser) -> None:
        sub = parser.add_subparsers(dest="operation", required=True)
        sub.add_parser("status", help="KEK versions and how many organization keys each one wraps")
        sub.add_parser(
            "rotate",
            help="create a new KEK version and re-wrap every organization key under it "
            "(run again after an interruption: it resumes instead of rotating twice)",
        )
        retire = sub.add_parser("retire", help="forget an old KEK version once nothing depends on it")
        retire.add_argument("version")
        export = sub.add_parser(
            "export",
            help="write the keys a restore needs (KEK file, keyring, secret key) into FILE, protected by a "
            "passphrase; keep it apart from the backups",
        )
        export.add_argument("file")
        export.add_argument("--passphrase-file", help="file holding the passphrase (or CASEBRIDGE_KEYS_PASSPHRASE)")
        export.add_argument("--force", action="store_true", help="replace FILE if it exists")

    def _progress(self, done: int, total: int) -> None:
        width = 30
        filled = int(width * done / total) if total else width
        sys.stderr.write(f"\r  re-wrapping [{'#' * filled}{'.' * (width - filled)}] {done}/{total}")
        if done == total:
            sys.stderr.write("\n")
        sys.stderr.flush()

    def handle(self, *args: Any, **options: Any) -> None:
        if options["operation"] == "export":
            self._export(options)
            return
        try:
            provider = key_provider()
        except KeyProviderError as exc:
            raise CommandError(str(exc)) from exc
        live = OrgKey.objects.filter(destroyed_at__isnull=True)
        if options["operation"] == "status":
            counts = dict(live.values_list("kek_version").annotate(n=Count("pk")).values_list("kek_version", "n"))
            self.stdout.write(f"provider {provider.name}:{provider.key_id}")
            for version in provider.versions():
                marker = " (current)" if version == provider.current_version() else ""
                self.stdout.write(f"  version {version}{marker}: wraps {counts.get(version, 0)} organization key(s)")
            return
        if options["operation"] == "rotate":
            pending = live.exclude(kek_version=provider.current_version()).count()
            if pending:
                self.stdout.write(f"resuming an interrupted rotation: {pending} key(s) still on older versions")
                new_version = provider.current_version()
            else:
                new_version = provider.rotate()
                self.stdout.write(f"new KEK version {new_version}")
            done = keystore.rewrap_all(self._progress)
            record("keys.rotated", details={"version": new_version, "rewrapped": done})
            self.stdout.write(self.style.SUCCESS(f"{done} organization key(s) now wrapped by version {new_version}"))
            return
        version = options["version"]
        if version == provider.current_version():
            raise CommandError(f"version {version} is the current KEK version; rotate first")
        from casebridge.audit.models import ArchiveSegment

        still = live.filter(kek_version=version).count()
        segments = ArchiveSegment.objects.filter(kek_version=version, destroyed_at__isnull=True).count()
        if still or segments:
            raise CommandError(
                f"version {version} still wraps {still} organization key(s) and {segments} audit archive "
                "segment key(s): run `casebridge keys rotate` first"
            )
        retire = getattr(provider, "retire", None)
        if retire is None:
            raise CommandError(f"the {provider.name} provider retires versions in its own console")
        try:
            retire(version)
        except KeyProviderError as exc:
            raise CommandError(str(exc)) from exc
        record("keys.retired", details={"version": version})
        self.stdout.write(self.style.SUCCESS(f"version {version} retired"))

    def _export(self, options: dict[str, Any]) -> None:
        from casebridge.access.operator import Operator
        from casebridge.retention.management.commands.backup import read_passphrase
        from casebridge.vault.keyexport import KeyExportError, current_keys, seal

        target = Path(options["file"])
        if target.exists() and not options["force"]:
            raise CommandError(f"{target} exists; pass --force to replace it")
        try:
            sealed = seal(current_keys(), read_passphrase(options, confirm=True))
        except KeyExportError as exc:
            raise CommandError(str(exc)) from exc
        fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "wb") as handle:
            handle.write(sealed)
            handle.flush()
            os.fsync(handle.fileno())
        record(
            "keys.exported",
            actor=Operator.running("keys export"),
            details={"provider": settings.VAULT_KEY_PROVIDER.partition(":")[0]},
        )
        self.stdout.write(
            self.style.SUCCESS(f"keys written to {target}")
            + "\nKeep this file and its passphrase apart from the backups: together with a backup they open every file."
        )
