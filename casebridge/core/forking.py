"""Forked helper processes (audit verify's chunks, a big archive's DICOM ingest): when this
process may fork them, and what a forked helper does with the database connections it inherited.

Helpers are forked, not spawned: they start in milliseconds with Django, the settings and the
caller's objects already loaded. A fork copies one thread only; a lock another thread held at
that moment stays locked for ever in the child. So a process forks only when it runs no other
thread, or when its other threads are the worker's own background loops, which do their work
holding `busy()`: `quiet()` waits until none of them is working, and forks then."""

from __future__ import annotations

import multiprocessing
import os
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from django.db import connections

_INHERITED: list[Any] = []
_WORKING = threading.Lock()
QUIET_THREAD = "casebridge-quiet-when-forking"  # the name prefix of such a background loop


def context() -> Any:
    return multiprocessing.get_context("fork")


def single_threaded() -> bool:
    return threading.active_count() == 1


def may_fork() -> bool:
    """No other thread, or only background loops that stop while a fork is made."""
    current = threading.current_thread()
    return all(t is current or t.name.startswith(QUIET_THREAD) for t in threading.enumerate())


@contextmanager
def busy() -> Iterator[None]:
    """Held by a background loop (QUIET_THREAD) while it works; no fork is made meanwhile."""
    with _WORKING:
        yield


# The forker takes the same lock: fork helpers inside `quiet()`, the loops are asleep until it ends.
quiet = busy


def cpus() -> int:
    """The CPUs this process may use."""
    return len(os.sched_getaffinity(0))


def leave_inherited_connections() -> None:
    """In a forked helper, first thing: leave the parent's connections alone (closing a PostgreSQL
    one would end the parent's session) and let Django open new ones if the helper reads the
    database. Helpers end with os._exit, so the inherited handles are never finalised."""
    for conn in connections.all(initialized_only=True):
        _INHERITED.append(conn.connection)
        conn.connection = None
