"""Upload leases: a dead holder's lease is taken over at once, a live one's is not; renewals carry
checkpoints the application checks before recording them as the upload's offset. The holders are
real processes, started and killed here. (The whole server killed mid-PATCH:
test_tus_client.py.)"""

from __future__ import annotations

import hashlib
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from casebridge.access.roles import Role
from casebridge.core.testing import add_member, make_org, make_user
from casebridge.kernel import appending, holders, staging
from casebridge.kernel.appending import Checkpoint, LeaseLost, UploadError
from casebridge.kernel.crypto.streaming import HEADER_SIZE, SEGMENT_SIZE
from casebridge.vault import uploads
from casebridge.vault.models import Upload
from casebridge.vault.tests.samples import binary_stl

pytestmark = pytest.mark.django_db
MiB = 1 << 20


@pytest.fixture
def upload(vault_home: Path) -> Upload:
    org = make_org("Smile Dental")
    staff = make_user("sam@smile.test")
    add_member(org, staff, Role.STAFF)
    return uploads.create_upload(organization=org, actor=staff, length=10 * MiB)


@pytest.fixture
def other_process() -> Iterator[subprocess.Popen[bytes]]:
    proc = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    yield proc
    proc.kill()
    proc.wait()


def _holder_of(proc: subprocess.Popen[bytes]) -> str:
    boot, namespace = holders._host()
    return f"{boot}/{namespace}/{proc.pid}/{holders._start_time(proc.pid)}"


def test_a_process_is_alive_until_it_dies(other_process: subprocess.Popen[bytes]) -> None:
    holder = _holder_of(other_process)
    assert holders.this_process() and not holders.is_dead(holders.this_process())
    assert not holders.is_dead(holder)
    other_process.kill()
    other_process.wait()
    assert holders.is_dead(holder)


def test_a_killed_holder_is_dead_while_still_a_zombie(other_process: subprocess.Popen[bytes]) -> None:
    """Killed but not yet reaped (its parent died too, and the host's init takes its time)."""
    holder = _holder_of(other_process)
    other_process.kill()
    deadline = time.monotonic() + 10
    while Path(f"/proc/{other_process.pid}/stat").read_text().rpartition(")")[2].split()[0] != "Z":
        assert time.monotonic() < deadline, "the killed process never became a zombie"
        time.sleep(0.05)
    assert holders.is_dead(holder)  # not reaped: this test has not called wait() yet


def test_a_reused_pid_does_not_keep_a_dead_holder_alive(other_process: subprocess.Popen[bytes]) -> None:
    boot, namespace, pid, started = _holder_of(other_process).split("/")
    assert holders.is_dead(f"{boot}/{namespace}/{pid}/{int(started) - 1}")  # same PID, started earlier


@pytest.mark.parametrize(
    "holder",
    [
        "",
        "garbage",
        "00000000-0000-0000-0000-000000000000/pid:[4026531836]/1/1",  # another host or boot
        "{boot}/pid:[1]/{pid}/1",  # another PID namespace (a container) on this host
    ],
)
def test_a_holder_that_cannot_be_checked_here_is_never_declared_dead(holder: str) -> None:
    boot, _namespace = holders._host()
    assert not holders.is_dead(holder.format(boot=boot, pid=999_999))


def _lease(upload: Upload, holder: str) -> str:
    token, _cont = uploads.lease(upload, client_offset=0, content_length=MiB, holder=holder)
    return token


def test_a_lease_whose_holder_was_killed_is_taken_over_at_once(
    upload: Upload, other_process: subprocess.Popen[bytes]
) -> None:
    first = _lease(upload, _holder_of(other_process))
    with pytest.raises(UploadError) as held:
        _lease(upload, holders.this_process())
    assert held.value.status == 423  # its holder runs: the lease stands
    other_process.kill()
    other_process.wait()
    second = _lease(upload, holders.this_process())
    upload.refresh_from_db()
    assert (upload.lease_token, upload.lease_holder) == (second, holders.this_process()) and second != first
    with pytest.raises(LeaseLost):  # the dead request's token no longer renews anything
        uploads.renew(upload, first)


def test_a_lease_held_on_another_host_waits_until_it_lapses(upload: Upload) -> None:
    _lease(upload, "00000000-0000-0000-0000-000000000000/pid:[4026531836]/4242/77")
    with pytest.raises(UploadError) as held:
        _lease(upload, holders.this_process())
    assert held.value.status == 423


def test_a_holder_asking_again_replaces_the_lease_it_left_behind(upload: Upload) -> None:
    me = holders.this_process()
    stale = _lease(upload, me)  # its commit never reached the application
    fresh = _lease(upload, me)
    assert fresh != stale
    with pytest.raises(UploadError) as held:  # an anonymous holder cannot claim it
        _lease(upload, "")
    assert held.value.status == 423


def test_a_checkpoint_becomes_the_upload_offset(upload: Upload) -> None:
    token = _lease(upload, holders.this_process())
    checkpoint = Checkpoint.at(3 * SEGMENT_SIZE, "stl")
    assert checkpoint.offset == 3 * SEGMENT_SIZE - 3 * 16 - HEADER_SIZE  # three segments' plaintext
    uploads.renew(upload, token, checkpoint)
    upload.refresh_from_db()
    assert (upload.offset, upload.ciphertext_offset, bytes(upload.tail), upload.file_type) == (
        checkpoint.offset,
        3 * SEGMENT_SIZE,
        b"",
        "stl",
    )
    assert upload.lease_token == token


@pytest.mark.parametrize(
    "checkpoint",
    [
        Checkpoint(1000, SEGMENT_SIZE, "stl"),  # offset and ciphertext disagree
        Checkpoint.at(SEGMENT_SIZE, "exe"),  # not a type CaseBridge accepts
        Checkpoint.at(11 * SEGMENT_SIZE, "stl"),  # past the upload's end
        Checkpoint(SEGMENT_SIZE - 16 - HEADER_SIZE + 1, SEGMENT_SIZE + 1, "stl"),  # not a segment boundary
    ],
)
def test_a_checkpoint_that_does_not_fit_the_upload_changes_nothing(upload: Upload, checkpoint: Checkpoint) -> None:
    token = _lease(upload, holders.this_process())
    before = Upload.objects.values("offset", "ciphertext_offset", "file_type").get(pk=upload.pk)
    with pytest.raises(UploadError) as refused:
        uploads.renew(upload, token, checkpoint)
    assert refused.value.status == 409
    assert Upload.objects.values("offset", "ciphertext_offset", "file_type").get(pk=upload.pk) == before


def test_a_checkpoint_never_moves_an_upload_backwards(upload: Upload) -> None:
    token = _lease(upload, holders.this_process())
    uploads.renew(upload, token, Checkpoint.at(4 * SEGMENT_SIZE, "stl"))
    with pytest.raises(UploadError):
        uploads.renew(upload, token, Checkpoint.at(2 * SEGMENT_SIZE, "stl"))
    upload.refresh_from_db()
    assert upload.ciphertext_offset == 4 * SEGMENT_SIZE


@pytest.mark.parametrize("checksummed", [False, True])
def test_a_flowing_body_reports_checkpoints_unless_it_must_count_whole(
    upload: Upload, monkeypatch: pytest.MonkeyPatch, checksummed: bool
) -> None:
    """A trickling 4 MiB body, renewing often: each renewal hands over the segments synced so far,
    in order and short of the end. A body with Upload-Checksum counts whole or not at all, so its
    renewals carry none."""
    monkeypatch.setattr(appending, "LEASE_RENEW_SECONDS", 0.02)
    monkeypatch.setattr(staging, "SYNC_SECONDS", 0.0)
    content = binary_stl(4 * MiB)
    fresh = uploads.create_upload(organization=upload.organization, actor=upload.created_by, length=len(content))
    token, cont = uploads.lease(fresh, client_offset=0, content_length=len(content), holder=holders.this_process())
    staged = uploads.staged(fresh)
    position = 0

    def trickle(view: memoryview) -> int:
        nonlocal position
        piece = content[position : position + min(len(view), 64 << 10)]
        view[: len(piece)] = piece
        position += len(piece)
        time.sleep(0.002)
        return len(piece)

    seen: list[Checkpoint | None] = []
    appended = appending.append_body(
        cont,
        stage=lambda chunks, release, durable: staged.append(cont.ciphertext_offset, chunks, release, durable),
        read_staged=staged.read_range,
        body=trickle,
        content_length=len(content),
        checksum=("sha256", hashlib.sha256(content).digest()) if checksummed else None,
        renew=seen.append,
    )
    assert appended.complete and len(seen) > 3
    checkpoints = [c for c in seen if c is not None]
    if checksummed:
        assert checkpoints == []
        return
    assert checkpoints and all(c.ciphertext_offset % SEGMENT_SIZE == 0 and c.file_type == "stl" for c in checkpoints)
    offsets = [c.offset for c in checkpoints]
    assert offsets == sorted(set(offsets)) and offsets[-1] < len(content)
    for checkpoint in checkpoints:  # each one the application accepts, in order
        uploads.renew(fresh, token, checkpoint)


def test_a_request_for_an_upload_this_process_is_still_finishing_waits(upload: Upload) -> None:
    """The commit of the last byte holds the upload in this process while it promotes and scans:
    a retried PATCH landing on the same process must not take the lease it holds in its own name."""
    _lease(upload, holders.this_process())
    with holders.writing(str(upload.pk)), pytest.raises(UploadError) as held:  # as commit() holds it
        uploads.append(
            upload,
            actor=upload.created_by,
            client_offset=0,
            body=lambda view: 0,
            content_length=MiB,
            add_version=_no_version_expected,
        )
    assert held.value.status == 423
    upload.refresh_from_db()
    assert upload.offset == 0 and upload.lease_holder == holders.this_process()


def _no_version_expected(content: object) -> object:
    raise AssertionError("this request must not reach the end of an upload")
