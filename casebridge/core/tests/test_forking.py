"""When a process may fork helpers: not while a thread of unknown work runs (a lock it holds
would stay locked in the child); the worker's own background loops stop for the fork instead."""

from __future__ import annotations

import threading
import time

from casebridge.core import forking


def _running(name: str, stop: threading.Event) -> threading.Thread:
    thread = threading.Thread(target=stop.wait, name=name, daemon=True)
    thread.start()
    return thread


def test_a_thread_of_unknown_work_forbids_forking_and_a_quiet_loop_does_not() -> None:
    before = forking.may_fork()  # the test runner may have left threads of its own
    stop = threading.Event()
    try:
        quiet = _running(f"{forking.QUIET_THREAD} test loop", stop)
        assert forking.may_fork() == before
        other = _running("someone else's", stop)
        assert forking.may_fork() is False
    finally:
        stop.set()
    quiet.join()
    other.join()
    assert forking.may_fork() == before


def test_forking_waits_for_a_background_loop_to_finish_its_work() -> None:
    order: list[str] = []
    working, done = threading.Event(), threading.Event()

    def loop() -> None:
        with forking.busy():
            working.set()
            time.sleep(0.2)
            order.append("loop finished its pass")
        done.set()

    threading.Thread(target=loop, name=f"{forking.QUIET_THREAD} test loop", daemon=True).start()
    working.wait(5)
    with forking.quiet():
        order.append("fork")
    done.wait(5)
    assert order == ["loop finished its pass", "fork"]
