"""casebridge serve: migrate, prepare TLS and keys on first start, then serve HTTPS."""

from __future__ import annotations

import ipaddress
import logging
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from django.conf import settings
from django.core.management import call_command
from django.core.management.base import BaseCommand, CommandError, CommandParser

from casebridge.core import running_server
from casebridge.core.env import env, envint, tighten_home
from casebridge.kernel.tickets import internal_key, ticket_key
from casebridge.kernel.tls import ensure_self_signed
from casebridge.vault.keyring import KeyringError, get_keyring
from casebridge.vault.transfer import use_transfer_server

log = logging.getLogger("casebridge.serve")


class Command(BaseCommand):
    help = "Serve CaseBridge over HTTPS (TLS 1.2+) with a background task worker and the transfer server."

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
        parser.add_argument(
            "--transfer-port",
            type=int,
            default=envint("CASEBRIDGE_TRANSFER_PORT", -1),
            help="port of the transfer server that moves download and upload bytes (default: --port + 1; "
            "0: the application moves them itself, at ~100 MiB per worker instead of ~45)",
        )

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
        # Files an older version (or a copy, or another tool) left readable to others.
        tightened = tighten_home(home)
        if tightened:
            self.stdout.write(f"made {tightened} file(s) and folder(s) under {home} private to this user")
        from casebridge.kernel.backends import StorageError
        from casebridge.vault import config as vault_config
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
        public = (env("CASEBRIDGE_PUBLIC_URL") and settings.PUBLIC_URL) or f"https://localhost:{port}"
        if not env("CASEBRIDGE_PUBLIC_URL"):
            # Links e-mailed by this server and its task worker (which inherits the environment)
            # name the port it really listens on, not the default one.
            settings.PUBLIC_URL = public
            os.environ["CASEBRIDGE_PUBLIC_URL"] = public
        self.stdout.write(self.style.SUCCESS(f"CaseBridge on {public}  (state in {home})"))
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

        transfer_port = port + 1 if options["transfer_port"] < 0 else options["transfer_port"]
        transfer = None
        if transfer_port:
            app_url = f"https://{_loopback(options['bind'])}:{port}"
            transfer = Supervised(
                lambda: start_transfer_server(
                    options["bind"], transfer_port, certfile, keyfile, options["threads"], home, app_url, public
                ),
                "the transfer server",
            )
            url = settings.TRANSFER_URL or f"https://{_public_host()}:{transfer_port}"
            use_transfer_server(url)
            self.stdout.write(f"File bytes (downloads, upload bodies) go through the transfer server on {url}")
        worker = None
        if not options["no_worker"]:
            worker = subprocess.Popen([sys.executable, "-m", "casebridge.cli", "worker"])
        running_server.announce(public, home=home)  # for createadmin and demo run beside us
        try:
            serve(
                binds=[f"{options['bind']}:{port}"],
                certfile=certfile,
                keyfile=keyfile,
                workers=options["workers"],
                threads=options["threads"],
                home=str(home),
                when_ready=stop_supervising_on_shutdown_signals([transfer] if transfer is not None else []),
            )
        finally:
            running_server.withdraw(home=home)
            if transfer is not None:
                transfer.stop()
            if worker is not None:
                end_process(worker, "the task worker")


# How long a child has, after SIGTERM, to finish what it is doing before it is killed. Cutting
# it short loses nothing for good (tasks are safe to run again, downloads and tus uploads
# resume), and an operator must not be left wondering whether Ctrl-C worked.
CHILD_EXIT_SECONDS = 10.0


def end_process(proc: subprocess.Popen[bytes], name: str, timeout: float = CHILD_EXIT_SECONDS) -> None:
    """SIGTERM (a graceful stop, if the terminal's SIGINT has not already ended it), then SIGKILL
    after `timeout`: a child must never keep `serve` from exiting, nor outlive it."""
    if proc.poll() is None:
        proc.terminate()
    try:
        proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        log.error("%s did not stop within %.0f s; killing it", name, timeout)
        proc.kill()
        proc.wait()


def stop_supervising_on_shutdown_signals(supervised: list[Supervised]) -> Callable[[Any], None]:
    """gunicorn `when_ready` hook. Ctrl-C reaches every process of the terminal's group, so the
    transfer server exits at the same moment as the application, and its watcher would start it
    again while gunicorn is still shutting down (then orphan it). A shutdown signal to `serve`
    therefore ends the watching first, then goes on to gunicorn's own handler."""

    def stop_watching_then(gunicorns_handler: Callable[[int, Any], Any]) -> Callable[[int, Any], None]:
        def handler(received: int, frame: Any) -> None:
            for child in supervised:
                child.stop_watching()
            gunicorns_handler(received, frame)

        return handler

    def when_ready(arbiter: Any) -> None:
        for signum in (signal.SIGINT, signal.SIGTERM, signal.SIGQUIT):
            gunicorns_handler = signal.getsignal(signum)
            if callable(gunicorns_handler):
                signal.signal(signum, stop_watching_then(gunicorns_handler))

    return when_ready


class Supervised:
    """A child process started again whenever it exits while `serve` runs (after a crash, or an
    operator's kill): downloads and uploads depend on the transfer server being there."""

    def __init__(self, start: Callable[[], subprocess.Popen[bytes]], name: str, pause: float = 1.0) -> None:
        self._start = start
        self.name = name
        self.pause = pause  # seconds between checks, and before the first new attempt
        self.proc = start()
        self._stopping = threading.Event()
        self._lock = threading.Lock()  # `proc` against `stop()` while a new one is starting
        self._watcher = threading.Thread(target=self._watch, name=f"watch {name}", daemon=True)
        self._watcher.start()

    def _watch(self) -> None:
        # Polled, not waited for: a thread blocked in waitpid() kept gunicorn's arbiter from
        # reaping its own workers at shutdown (it waited out graceful_timeout).
        while not self._stopping.wait(self.pause):
            code = self.proc.poll()
            if code is None:
                continue
            log.error("%s exited (status %s); starting it again", self.name, code)
            pause = self.pause
            while not self._stopping.wait(pause):
                try:
                    started = self._start()
                except CommandError as exc:
                    pause = min(pause * 2, 30 * self.pause)  # e.g. a port someone else took: no log flood
                    log.error("%s; next attempt in %.0f s", exc, pause)
                    continue
                with self._lock:
                    self.proc = started
                break

    def stop_watching(self) -> None:
        """Shutdown has begun: whatever exits now stays down (the child is not signalled)."""
        self._stopping.set()

    def stop(self) -> None:
        self._stopping.set()
        # A start already under way finishes first, so the process it starts is the one ended
        # here rather than left running after `serve` has gone.
        self._watcher.join(timeout=60)
        with self._lock:
            proc = self.proc
        end_process(proc, self.name)


def _public_host() -> str:
    host = urlsplit(settings.PUBLIC_URL).hostname or "localhost"
    return f"[{host}]" if ":" in host else host


def _loopback(bind: str) -> str:
    """How a process on this host reaches a listener bound to `bind`."""
    try:
        address = ipaddress.ip_address(bind.strip("[]"))
    except ValueError:
        return bind  # a host name
    if address.is_unspecified:  # listening on every address: loopback is one of them
        address = ipaddress.ip_address("::1" if address.version == 6 else "127.0.0.1")
    return f"[{address}]" if address.version == 6 else str(address)


def start_transfer_server(
    bind: str, port: int, certfile: str, keyfile: str, threads: int, home: Path, app_url: str, public: str
) -> subprocess.Popen[bytes]:
    """Start `python -m casebridge.transfer` (a fresh interpreter: no Django in its memory) and
    wait until it listens. It serves downloads from tickets and takes tus bodies, asking the
    application at `app_url` (Host and CORS origin: `public`); the ticket and internal keys go to
    it over a pipe."""
    host = urlsplit(public).netloc
    uploads = ["--app-url", app_url, "--app-host", host, "--app-origin", f"{urlsplit(public).scheme}://{host}"]
    proc = subprocess.Popen(  # noqa: S603 - our interpreter and module; arguments from our own settings
        [
            sys.executable,
            "-m",
            "casebridge.transfer",
            "--bind",
            f"{bind}:{port}",
            "--certfile",
            certfile,
            "--keyfile",
            keyfile,
            "--storage-url",
            settings.VAULT_STORAGE_URL,
            "--threads",
            str(threads),
            "--control-socket",
            str(home / "transfer.ctl"),
            *uploads,
        ],
        stdin=subprocess.PIPE,
    )
    assert proc.stdin is not None
    keys = (ticket_key(settings.SECRET_KEY), internal_key(settings.SECRET_KEY))
    proc.stdin.write(b"".join(key.hex().encode() + b"\n" for key in keys))
    proc.stdin.close()
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise CommandError(f"the transfer server did not start (port {port} taken?); see the lines above")
        try:
            socket.create_connection((bind, port), timeout=1).close()
            return proc
        except OSError:
            time.sleep(0.1)
    proc.terminate()
    raise CommandError(f"the transfer server did not listen on {bind}:{port} within 30 s")
