"""`serve` keeps the transfer server running: started again after it exits, with growing pauses
while starting fails, never once shutdown has begun, and stopped for good on the way out."""

from __future__ import annotations

import itertools
import os
import signal
import subprocess
import sys
import threading
import time

from django.core.management.base import CommandError

from casebridge.core.management.commands.serve import Supervised, end_process, stop_supervising_on_shutdown_signals


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
    # The fourth attempt is counted as it begins; the watcher takes its process once it started.
    while (len(attempts) < 4 or supervised.proc.poll() is not None) and time.monotonic() < deadline:
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


def test_a_shutdown_signal_ends_the_watching_before_gunicorn_handles_it() -> None:
    """Ctrl-C or systemd's SIGTERM reaches the transfer server too: once `serve` is told to stop,
    a child that exits stays down instead of being started again mid-shutdown."""
    attempts: list[subprocess.Popen[bytes]] = []

    def start() -> subprocess.Popen[bytes]:
        attempts.append(_process(0.5 if not attempts else 60))
        return attempts[-1]

    received: list[int] = []
    previous = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM, signal.SIGQUIT)}
    try:
        for signum in previous:
            signal.signal(signum, lambda number, frame: received.append(number))  # gunicorn's, in serve
        supervised = Supervised(start, "a child", pause=0.1)
        stop_supervising_on_shutdown_signals([supervised])(object())
        os.kill(os.getpid(), signal.SIGTERM)
        time.sleep(1.5)  # the child exits after 0.5 s; watching every 0.1 s would have restarted it
        assert received == [signal.SIGTERM]  # gunicorn still gets the signal
        assert len(attempts) == 1 and attempts[0].poll() is not None
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
        for proc in attempts:
            proc.kill()
            proc.wait()


def test_stopping_while_a_new_child_starts_ends_that_child_too() -> None:
    """The watcher may be starting a replacement when `serve` stops: that one must not outlive it."""
    attempts: list[subprocess.Popen[bytes]] = []
    starting = threading.Event()

    def start() -> subprocess.Popen[bytes]:
        if attempts:
            starting.set()
            time.sleep(1)  # a slow start (the transfer server waits until it listens)
        attempts.append(_process(0 if not attempts else 60))
        return attempts[-1]

    supervised = Supervised(start, "a child", pause=0.1)
    assert starting.wait(10)
    supervised.stop()  # while the second start is under way
    assert len(attempts) == 2
    assert all(proc.poll() is not None for proc in attempts)
    assert supervised.proc is attempts[1]


def test_a_child_that_ignores_sigterm_is_killed_after_the_timeout() -> None:
    stubborn = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); print(1, flush=True); time.sleep(60)",
        ],
        stdout=subprocess.PIPE,
    )
    assert stubborn.stdout is not None and stubborn.stdout.readline()  # its handler is in place
    started = time.monotonic()
    end_process(stubborn, "a stubborn child", timeout=0.5)
    assert stubborn.returncode == -signal.SIGKILL and time.monotonic() - started < 5
