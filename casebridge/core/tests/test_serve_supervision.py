"""`serve` keeps the transfer server running: started again after it exits, with growing pauses
while starting fails, and stopped for good on the way out."""

from __future__ import annotations

import itertools
import subprocess
import sys
import threading
import time

from django.core.management.base import CommandError

from casebridge.core.management.commands.serve import Supervised


def _process(seconds: float) -> subprocess.Popen[bytes]:
    return subprocess.Popen([sys.executable, "-c", f"import time; time.sleep({seconds})"])


def test_a_child_that_exits_is_started_again_after_failed_attempts_with_growing_pauses() -> None:
    attempts: list[float] = []

    def start() -> subprocess.Popen[bytes]:
        attempts.append(time.monotonic())
        if len(attempts) == 1:
            return _process(0)  # exits at once, as a crash would
        if len(attempts) < 4:
            raise CommandError("the port is taken")
        return _process(60)

    supervised = Supervised(start, "a child", pause=0.2)
    deadline = time.monotonic() + 20
    while len(attempts) < 4 and time.monotonic() < deadline:
        time.sleep(0.05)
    try:
        assert len(attempts) == 4
        assert supervised.proc.poll() is None  # the fourth attempt runs
        gaps = [b - a for a, b in itertools.pairwise(attempts[1:])]
        assert gaps[1] > gaps[0]  # the pause doubled after each failure
    finally:
        supervised.stop()
    assert supervised.proc.poll() is not None
    time.sleep(0.3)
    assert len(attempts) == 4  # stopping is final: nothing starts it again


def test_stopping_while_the_child_is_being_started_again_leaves_nothing_running() -> None:
    """Ctrl-C reaches the whole process group: the child exits, `serve` begins starting it again
    and stops at the same moment. The child started meanwhile must not outlive `serve`."""
    started: list[subprocess.Popen[bytes]] = []
    starting, restarted = threading.Event(), threading.Event()

    def start() -> subprocess.Popen[bytes]:
        if started:  # starting again takes a while (the transfer server waits for its port)
            starting.set()
            time.sleep(0.5)
        started.append(_process(0 if not started else 60))
        if len(started) > 1:
            restarted.set()
        return started[-1]

    supervised = Supervised(start, "a child", pause=0.1)
    assert starting.wait(10)
    supervised.stop()  # while the new child is on its way
    try:
        assert restarted.wait(10)
        time.sleep(0.2)
        assert [proc.poll() is not None for proc in started] == [True, True]
    finally:
        for proc in started:
            proc.kill()
            proc.wait()
