"""Who holds an upload's lease, so that a dead holder's lease is broken at once (no Django here:
the transfer server names itself with it too).

An upload is written by one request at a time, under a lease in its row. A lease names its
holder: the process (host boot, PID namespace, PID and the process's start time) that writes the
body. When a process is killed mid-request its lease would otherwise block every resume until it
lapsed; instead the application checks, when a lease is asked for, whether the holder still runs:

- on this host (same boot id and PID namespace): a holder whose PID is gone, or now belongs to a
  process started at another time, is dead, and its lease is taken over at once;
- elsewhere (another host or container) nothing can be known: the lease lapses by itself, and it
  is short because it is renewed while the body's bytes flow (vault/uploads.LEASE_SECONDS).

A holder also asks for a lease in its own name on an upload it is not writing (`writing`), which
means its earlier request for that upload ended without giving the lease back (the application
did not answer the commit): that lease is stale too.
"""

from __future__ import annotations

import contextlib
import os
import threading
from collections.abc import Iterator
from functools import cache
from pathlib import Path

_writing: set[str] = set()
_lock = threading.Lock()


def _read(path: str) -> str:
    try:
        return Path(path).read_text().strip()
    except OSError:
        return ""


def _start_time(pid: int) -> str:
    """The process's start time in clock ticks since boot ('' when there is no such process, or
    only its zombie: a killed worker whose parent died too waits to be reaped by whatever init
    the host has, and a zombie writes nothing)."""
    stat = _read(f"/proc/{pid}/stat")
    # The command name (field 2) may hold spaces and parentheses: fields count from the last ')'.
    fields = stat.rpartition(")")[2].split()
    if len(fields) <= 19 or fields[0] in ("Z", "X"):
        return ""
    return fields[19]


@cache
def _host() -> tuple[str, str]:
    boot = _read("/proc/sys/kernel/random/boot_id")
    try:
        namespace = os.readlink("/proc/self/ns/pid")
    except OSError:
        namespace = ""
    return boot, namespace


def this_process() -> str:
    """This process's name as a lease holder ('' where /proc cannot tell: leases then only lapse)."""
    boot, namespace = _host()
    pid = os.getpid()
    started = _start_time(pid)
    if not (boot and namespace and started):
        return ""
    return f"{boot}/{namespace}/{pid}/{started}"


def is_dead(holder: str) -> bool:
    """True only when `holder` is known not to run any more (see the module docstring)."""
    parts = holder.split("/")
    if len(parts) != 4 or not parts[2].isdigit():
        return False
    boot, namespace, pid, started = parts
    if (boot, namespace) != _host() or not boot or not namespace:
        return False  # another host, container or boot: its lease lapses by itself
    return _start_time(int(pid)) != started


@contextlib.contextmanager
def writing(upload_id: str) -> Iterator[bool]:
    """Mark `upload_id` as being written by this process for the block; yields False (and marks
    nothing) when another request of this process is writing it already."""
    with _lock:
        mine = upload_id not in _writing
        _writing.add(upload_id)
    try:
        yield mine
    finally:
        if mine:
            with _lock:
                _writing.discard(upload_id)
