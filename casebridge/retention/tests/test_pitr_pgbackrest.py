"""Point-in-time recovery for PostgreSQL with pgBackRest (docs/backups.md), on a private cluster
this test starts itself (initdb and pg_ctl in a scratch folder, its own port and socket; the
shared server on 5432 is never touched): WAL is archived, a full backup is taken, rows are
written, the time is noted, more rows are written; the cluster is restored to that time and holds
exactly the rows written before it. The repository is a folder, or an S3 bucket (moto's server
over HTTPS on loopback, as pgBackRest speaks S3 only over TLS) encrypted by pgBackRest, or a
folder copied off-site into a restic repository, lost, and brought back from restic before the
restore (docs/backups.md: the repository's off-site copy through restic)."""

from __future__ import annotations

import os
import secrets
import shutil
import subprocess
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager, suppress
from pathlib import Path
from typing import Any

import boto3
import pytest

from casebridge.core.testing import require
from casebridge.kernel.tls import ensure_self_signed
from casebridge.transfer.testing import free_port

PG_BIN = Path("/usr/lib/postgresql/15/bin")
STANZA = "casebridge"

pytestmark = [
    pytest.mark.slow,  # about 30 s: initdb, a full backup, a restore and WAL replay
    # One private cluster whatever the suite runs on: the PostgreSQL pass would repeat it.
    pytest.mark.sqlite_pass_only,
]


def _require_tools() -> None:
    require(shutil.which("pgbackrest") is not None, "pgBackRest", "apt-get install pgbackrest")
    require((PG_BIN / "pg_ctl").exists(), "PostgreSQL 15's server binaries", "apt-get install postgresql-15")
    # PostgreSQL refuses to run as root: the cluster and pgBackRest run as the `postgres` user.
    require(os.geteuid() == 0 or os.environ.get("USER") == "postgres", "root or the postgres user", "run as root")


class Cluster:
    def __init__(self, root: Path) -> None:
        self.root = root
        self.data = root / "data"
        self.port = free_port()
        self.conf = root / "pgbackrest.conf"
        self.offsite = False  # the repository goes through restic and back before the restore

    def restic(self, *args: str) -> subprocess.CompletedProcess[str]:
        """restic as the postgres user, on a repository beside the cluster (the off-site host)."""
        password = self.root / "restic-password"
        if not password.exists():
            password.write_text(secrets.token_urlsafe(24))
            if os.geteuid() == 0:
                shutil.chown(password, "postgres", "postgres")
            password.chmod(0o600)
        return self.as_postgres(
            "restic", "--no-cache", "-q", "-r", str(self.root / "offsite"), "-p", str(password), *args
        )

    def as_postgres(self, *argv: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        prefix = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []
        done = subprocess.run([*prefix, *argv], capture_output=True, text=True, check=False, timeout=120, cwd=self.root)
        if check and done.returncode != 0:
            raise AssertionError(f"{' '.join(argv)} failed:\n{done.stdout}\n{done.stderr}")
        return done

    def pgbackrest(self, *args: str) -> subprocess.CompletedProcess[str]:
        return self.as_postgres("pgbackrest", f"--config={self.conf}", f"--stanza={STANZA}", *args)

    def sql(self, statement: str) -> str:
        psql = [str(PG_BIN / "psql"), "-h", str(self.root), "-p", str(self.port), "-d", "postgres", "-XAtq"]
        return self.as_postgres(*psql, "-v", "ON_ERROR_STOP=1", "-c", statement).stdout.strip()

    def start(self) -> None:
        self.as_postgres(str(PG_BIN / "pg_ctl"), "-D", str(self.data), "-l", str(self.root / "log"), "-w", "start")

    def stop(self) -> None:
        self.as_postgres(str(PG_BIN / "pg_ctl"), "-D", str(self.data), "-m", "fast", "-w", "stop", check=False)


@contextmanager
def _s3_over_tls(root: Path) -> Iterator[int]:
    """moto's S3 on a free loopback port behind a self-signed certificate for `localhost`
    (pgBackRest matches the host by name, not by IP address); its port."""
    from moto.server import DomainDispatcherApplication, MotoRequestHandler, create_backend_app
    from werkzeug.serving import make_server

    certificate, key = root / "s3-tls" / "s3.crt", root / "s3-tls" / "s3.key"
    ensure_self_signed(certificate, key, ["localhost"])  # the embedded server's own maker
    if os.geteuid() == 0:  # pgBackRest, as the postgres user, reads the certificate to check it
        shutil.chown(certificate.parent, "postgres", "postgres")
        shutil.chown(certificate, "postgres", "postgres")
    port = free_port()
    app = DomainDispatcherApplication(create_backend_app)
    context = (str(certificate), str(key))
    server = make_server("127.0.0.1", port, app, True, request_handler=MotoRequestHandler, ssl_context=context)
    close = server.shutdown_request

    def close_with_notify(request: Any) -> None:
        """End TLS with close_notify before closing: pgBackRest's OpenSSL 3 takes a bare EOF
        (werkzeug's way of ending an HTTP/1.0 answer over TLS) for an error."""
        with suppress(OSError, ValueError):
            request.unwrap()
        close(request)

    server.shutdown_request = close_with_notify
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    boto3.client(
        "s3",
        endpoint_url=f"https://localhost:{port}",
        region_name="us-east-1",
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
        verify=str(certificate),
    ).create_bucket(Bucket="pitr")
    try:
        yield port
    finally:
        server.shutdown()
        thread.join()


def _repository(root: Path, repo: str, stack: ExitStack) -> str:
    """pgBackRest's repo1 options: a folder, or the bucket (its certificate checked against the
    test's own CA file), encrypted by pgBackRest."""
    if repo in ("posix", "restic"):
        return f"repo1-path={root / 'repo'}\n"
    port = stack.enter_context(_s3_over_tls(root))
    return (
        "repo1-type=s3\nrepo1-path=/casebridge\nrepo1-s3-bucket=pitr\nrepo1-s3-endpoint=localhost\n"
        f"repo1-storage-port={port}\nrepo1-s3-region=us-east-1\nrepo1-s3-uri-style=path\n"
        f"repo1-s3-key=testing\nrepo1-s3-key-secret=testing\nrepo1-storage-ca-file={root / 's3-tls' / 's3.crt'}\n"
        f"repo1-cipher-type=aes-256-cbc\nrepo1-cipher-pass={secrets.token_urlsafe(24)}\n"
    )


@pytest.fixture(params=["posix", "s3", "restic"])
def cluster(request: pytest.FixtureRequest) -> Iterator[Cluster]:
    _require_tools()
    if request.param == "restic":
        require(shutil.which("restic") is not None, "restic", "apt-get install restic")
    root = Path(tempfile.mkdtemp(prefix="cb-pitr-"))
    if os.geteuid() == 0:
        shutil.chown(root, "postgres", "postgres")
    stack = ExitStack()
    repository = _repository(root, request.param, stack)
    node = Cluster(root)
    node.offsite = request.param == "restic"
    node.as_postgres(str(PG_BIN / "initdb"), "-D", str(node.data), "-A", "trust", "-U", "postgres")
    archive = f"pgbackrest --config={node.conf} --stanza={STANZA} archive-push %p"
    with (node.data / "postgresql.conf").open("a") as conf:
        conf.write(
            f"port = {node.port}\nlisten_addresses = ''\nunix_socket_directories = '{root}'\n"
            f"wal_level = replica\narchive_mode = on\narchive_command = '{archive}'\narchive_timeout = 5\n"
        )
    node.conf.write_text(
        f"[global]\n{repository}repo1-retention-full=2\nlog-path={root}\n"
        f"lock-path={root}\nspool-path={root}\nstart-fast=y\nlog-level-console=warn\n\n"
        f"[{STANZA}]\npg1-path={node.data}\npg1-port={node.port}\npg1-socket-path={root}\n"
    )
    if os.geteuid() == 0:
        shutil.chown(node.conf, "postgres", "postgres")
    node.conf.chmod(0o600)  # it holds the repository's cipher passphrase and S3 key
    node.start()
    try:
        yield node
    finally:
        node.stop()
        stack.close()
        shutil.rmtree(root, ignore_errors=True)


def test_pgbackrest_restores_a_cluster_to_a_point_in_time_with_exactly_the_rows_before_it(cluster: Cluster) -> None:
    cluster.pgbackrest("stanza-create")
    cluster.pgbackrest("check")  # archive_command works: a WAL segment reached the repository
    cluster.sql("CREATE TABLE cases (id int PRIMARY KEY, written_at timestamptz DEFAULT clock_timestamp())")
    cluster.pgbackrest("--type=full", "backup")
    cluster.sql("INSERT INTO cases (id) SELECT generate_series(1, 10)")
    time.sleep(1.1)
    target = cluster.sql("SELECT clock_timestamp()")
    time.sleep(1.1)
    cluster.sql("INSERT INTO cases (id) SELECT generate_series(11, 25)")
    cluster.sql("DELETE FROM cases WHERE id <= 3")  # the mistake the restore undoes
    cluster.sql("SELECT pg_switch_wal()")  # archive the segment holding the later writes too
    for _ in range(50):
        info = cluster.pgbackrest("info").stdout
        if "wal archive min/max" in info:
            break
        time.sleep(0.2)
    cluster.stop()
    if cluster.offsite:
        # The documented off-site copy: the repository into restic after each backup; then the
        # disk holding the repository is lost, and restic brings it back (paths are absolute).
        repository = cluster.root / "repo"
        cluster.restic("init")
        cluster.restic("backup", str(repository))
        cluster.restic("check", "--read-data")
        shutil.rmtree(repository)
        cluster.restic("restore", "latest", "--target", "/")
        assert "wal archive min/max" in cluster.pgbackrest("info").stdout

    cluster.pgbackrest("--delta", "--type=time", f"--target={target}", "--target-action=promote", "restore")
    cluster.start()
    for _ in range(100):  # recovery replays the archived WAL up to the target, then promotes
        if cluster.sql("SELECT pg_is_in_recovery()") == "f":
            break
        time.sleep(0.2)

    assert cluster.sql("SELECT string_agg(id::text, ',' ORDER BY id) FROM cases") == ",".join(map(str, range(1, 11)))
