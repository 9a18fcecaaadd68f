"""Where the server of this CASEBRIDGE_HOME answers, for commands run beside it: `casebridge serve`
writes its public URL (and its process id) to CASEBRIDGE_HOME/running_server.json at start and
removes it on the way out, so `createadmin` and `demo` print links with the port the server
really listens on rather than the default 8443."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

from django.conf import settings

from casebridge.core.env import env

FILE_NAME = "running_server.json"


def _path(home: Path | None = None) -> Path:
    return Path(home or settings.HOME) / FILE_NAME


def announce(public_url: str, *, home: Path | None = None) -> None:
    """Called by `serve` once it knows its public URL; readers check the process is still alive."""
    path = _path(home)
    temporary = path.with_suffix(".tmp")
    temporary.write_text(json.dumps({"url": public_url, "pid": os.getpid()}))
    temporary.chmod(0o600)
    temporary.replace(path)  # atomic: a reader never sees half a file


def withdraw(*, home: Path | None = None) -> None:
    """Remove the announcement if it is this process's (another serve may have taken over)."""
    path = _path(home)
    try:
        if json.loads(path.read_text()).get("pid") == os.getpid():
            path.unlink()
    except (OSError, ValueError):
        pass


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # someone else's process: it exists
    return True


def running_url(*, home: Path | None = None) -> str | None:
    """The public URL of the serve running on this CASEBRIDGE_HOME, None when none runs (no file,
    or one left behind by a server that was killed)."""
    try:
        announced = json.loads(_path(home).read_text())
        url, pid = str(announced["url"]), int(announced["pid"])
    except (OSError, ValueError, KeyError, TypeError):
        return None
    return url if _alive(pid) else None


@dataclass(frozen=True)
class LinkBase:
    url: str
    note: str  # what to tell the person when the URL is a guess ("" when it is not)


def link_base() -> LinkBase:
    """The origin for links a command prints: CASEBRIDGE_PUBLIC_URL when set, else the running
    server's, else the default with a note saying which variable to set."""
    if env("CASEBRIDGE_PUBLIC_URL"):
        return LinkBase(settings.PUBLIC_URL.rstrip("/"), "")
    running = running_url()
    if running:
        return LinkBase(running.rstrip("/"), "")
    return LinkBase(
        settings.PUBLIC_URL.rstrip("/"),
        f"No running `casebridge serve` found for {settings.HOME}, so links assume {settings.PUBLIC_URL}. "
        "If the server answers elsewhere, set CASEBRIDGE_PUBLIC_URL (e.g. https://cases.example.com) "
        "and run this again.",
    )
