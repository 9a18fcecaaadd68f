"""casebridge serve: migrate, prepare TLS and keys on first start, then serve HTTPS."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

from django.conf import settings
from django.core.management import call_command
from django.core.management.base import BaseCommand, CommandError, CommandParser

from casebridge.core.env import env, envint
from casebridge.core.tls import ensure_self_signed
from casebridge.vault.keyring import KeyringError, get_keyring


class Command(BaseCommand):
    help = "Serve CaseBridge over HTTPS (TLS 1.2+) with a background task worker."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--port", type=int, default=envint("CASEBRIDGE_PORT", 8443))
        parser.add_argument(
            "--bind",
            default=env("CASEBRIDGE_BIND", "127.0.0.1"),
            help="address to listen on (default 127.0.0.1; 0.0.0.0 for the network)",
        )
        parser.add_argument("--workers", type=int, default=envint("CASEBRIDGE_WORKERS", 2))
        parser.add_argument("--threads", type=int, default=envint("CASEBRIDGE_THREADS", 16))
        parser.add_argument("--no-worker", action="store_true", help="do not start the task worker")

    def handle(self, *args: Any, **options: Any) -> None:
        from casebridge.core.server import serve

        home = Path(settings.HOME)
        try:
            get_keyring()
        except KeyringError as exc:
            raise CommandError(str(exc)) from exc
        call_command("migrate", interactive=False, verbosity=0)
        call_command("createcachetable", verbosity=0)
        call_command("collectstatic", interactive=False, verbosity=0)
        from casebridge.vault import config as vault_config
        from casebridge.vault.backends import StorageError
        from casebridge.vault.keys import KeyProviderError

        try:
            vault_config.check()
        except (KeyProviderError, StorageError) as exc:
            raise CommandError(f"cannot start: {exc}") from exc

        certfile = env("CASEBRIDGE_TLS_CERT")
        keyfile = env("CASEBRIDGE_TLS_KEY")
        if bool(certfile) != bool(keyfile):
            raise CommandError("set both CASEBRIDGE_TLS_CERT and CASEBRIDGE_TLS_KEY, or neither")
        if not certfile:
            cert_path, key_path = home / "tls" / "cert.pem", home / "tls" / "key.pem"
            if ensure_self_signed(cert_path, key_path, ["localhost", "127.0.0.1", "::1"]):
                self.stdout.write(f"Created a self-signed TLS certificate: {cert_path}")
            certfile, keyfile = str(cert_path), str(key_path)
        for path in (certfile, keyfile):
            if not os.access(path, os.R_OK):
                raise CommandError(f"cannot read {path}")

        from casebridge.accounts.models import User

        port = options["port"]
        self.stdout.write(self.style.SUCCESS(f"CaseBridge on https://localhost:{port}  (state in {home})"))
        if not User.objects.exists():
            self.stdout.write(
                "No users yet. Create the first administrator in another terminal:\n"
                '  .venv/bin/casebridge createadmin --email you@example.com --org "Your Practice" --kind practice\n'
                "It prints a single-use setup link, valid for 1 hour."
            )
        if settings.EMAIL_BACKEND.endswith("filebased.EmailBackend"):
            self.stdout.write(
                f"Outgoing e-mail is written to {settings.EMAIL_FILE_PATH} (set CASEBRIDGE_SMTP_HOST to send)."
            )

        worker = None
        if not options["no_worker"]:
            worker = subprocess.Popen([sys.executable, "-m", "casebridge.cli", "worker"])
        try:
            serve(
                binds=[f"{options['bind']}:{port}"],
                certfile=certfile,
                keyfile=keyfile,
                workers=options["workers"],
                threads=options["threads"],
                home=str(home),
            )
        finally:
            if worker is not None:
                worker.terminate()
                worker.wait(timeout=10)
