"""The background worker starts with its tasks' code loaded and frozen out of the collector's
reach, so a long task does not pay for walking the import-time heap; and a task queued on its
machine wakes it at once, once committed, instead of waiting for its next poll."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from casebridge.core import wakeup
from casebridge.core.tasks import deliver_mail
from casebridge.transfer.testing import wait_until

PROBE = """
import gc, json, sys
import django
django.setup()
before = gc.get_freeze_count()
loaded_before = "casebridge.imaging.tasks" in sys.modules
from casebridge.core.management.commands.worker import preload
preload()
print(json.dumps({
    "before": before,
    "after": gc.get_freeze_count(),
    "loaded_before": loaded_before,
    "tasks": "casebridge.imaging.tasks" in sys.modules,
    "pydicom": "pydicom" in sys.modules,
}))
"""


def test_preload_imports_every_apps_tasks_then_freezes_the_heap() -> None:
    # In a process of its own (this run's settings): freezing the test run's heap would keep
    # everything it makes.
    assert os.environ["DJANGO_SETTINGS_MODULE"]
    out = subprocess.run(
        [sys.executable, "-c", PROBE],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    found = json.loads(out.strip().splitlines()[-1])
    assert found["before"] == 0 and not found["loaded_before"]
    assert found["tasks"] and found["pydicom"]  # the ingest's code, and the DICOM library it uses
    assert found["after"] > 10_000  # Django, the apps and their libraries: all of it frozen


ENQUEUE = """
import django
django.setup()
from casebridge.core.tasks import deliver_mail
deliver_mail.enqueue(["lab@example.test"], "Woken", "A task queued while the worker slept.")
"""


def _finished(home: Path, subject: str) -> bool:
    mail = home / "mail"
    return mail.is_dir() and any(subject in path.read_text() for path in mail.iterdir())


def test_a_task_queued_on_this_machine_wakes_the_worker_at_once(tmp_path: Path) -> None:
    env = {**os.environ, "CASEBRIDGE_HOME": str(tmp_path), "DJANGO_SETTINGS_MODULE": "casebridge.settings"}
    for name in ("DATABASE_URL", "CASEBRIDGE_TASKS_BACKEND"):
        env.pop(name, None)
    assert len(os.fsencode(tmp_path / wakeup.SOCKET_NAME)) < 108  # a socket's path limit
    cli = [sys.executable, "-m", "casebridge.cli"]
    subprocess.run([*cli, "migrate", "-v0"], env=env, check=True, timeout=120)
    # It looks for tasks every 30 s: only a wake-up gets the mail out within seconds.
    with (tmp_path / "worker.log").open("wb") as log:
        worker = subprocess.Popen(
            [*cli, "worker", "--poll-interval", "30", "--tick", "3600"], env=env, stdout=log, stderr=subprocess.STDOUT
        )
    try:
        wait_until(lambda: (tmp_path / wakeup.SOCKET_NAME).exists(), 60, "the worker to listen")
        time.sleep(2)  # its first housekeeping run, then asleep
        subprocess.run([sys.executable, "-c", ENQUEUE], env=env, check=True, timeout=60)
        wait_until(lambda: _finished(tmp_path, "Woken"), 10, "the queued mail to be delivered")
    finally:
        worker.terminate()
        worker.wait(timeout=30)
    assert not (tmp_path / wakeup.SOCKET_NAME).exists()  # a worker that stops removes its socket


def test_a_second_worker_of_the_same_home_leaves_the_first_its_wake_ups(tmp_path: Path, settings: Any) -> None:
    settings.HOME = tmp_path
    first = wakeup.Listener.open()
    assert first is not None
    try:
        assert wakeup.Listener.open() is None  # polls only; the first keeps the socket
        wakeup.notify()
        started = time.monotonic()
        first.sleep(5)
        assert time.monotonic() - started < 1
    finally:
        first.close()
    # A socket left by a worker that is gone is taken over.
    stale = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    stale.bind(os.fsencode(tmp_path / wakeup.SOCKET_NAME))
    stale.close()
    taken = wakeup.Listener.open()
    assert taken is not None
    taken.close()


def test_without_a_wake_up_the_listener_sleeps_its_whole_interval(tmp_path: Path, settings: Any) -> None:
    settings.HOME = tmp_path
    listener = wakeup.Listener.open()
    assert listener is not None
    try:
        started = time.monotonic()
        listener.sleep(0.3)
        assert time.monotonic() - started >= 0.29
    finally:
        listener.close()


@pytest.mark.django_db
def test_the_wake_up_is_sent_only_once_the_queued_task_is_committed(
    tmp_path: Path, settings: Any, django_capture_on_commit_callbacks: Any
) -> None:
    settings.HOME = tmp_path
    listener = wakeup.Listener.open()
    assert listener is not None
    try:
        with django_capture_on_commit_callbacks(execute=False) as callbacks:
            deliver_mail.enqueue(["lab@example.test"], "Queued", "Not yet committed.")
        started = time.monotonic()
        listener.sleep(0.3)  # nothing sent inside the transaction
        assert time.monotonic() - started >= 0.29
        for callback in callbacks:  # the commit
            callback()
        started = time.monotonic()
        listener.sleep(5)
        assert time.monotonic() - started < 1
    finally:
        listener.close()
