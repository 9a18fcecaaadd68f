"""Bench only: a CaseBridge server whose audit writer does nothing, for bench/audit_cost.py's
"audit off" side. Never part of the installed package; refuses to load anywhere but a benchmark's
own temporary home.

Used as DJANGO_SETTINGS_MODULE=bench.audit_off (with the repository on PYTHONPATH): the
portal's settings, plus an app whose ready() replaces what record() and record_many() write with
nothing. Everything else a request does (validation of the event, the caller's transaction,
sessions, the token's last-used time, the download ticket) is untouched, so the difference
between this server and the ordinary one is the audit write and its seal, nothing more.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from django.apps import AppConfig
from django.core.exceptions import ImproperlyConfigured

from casebridge import settings as _portal

# The portal's settings, unchanged (Django reads only the upper-case names of this module).
globals().update({name: value for name, value in vars(_portal).items() if name.isupper()})
INSTALLED_APPS = [*_portal.INSTALLED_APPS, "bench.audit_off.AuditOff"]

SWITCH = "CASEBRIDGE_BENCH_AUDIT"  # must say "off"
BENCH_DIR_PREFIX = "cb-bench-"  # bench/_common.workdir's temporary directories


def refusal(home: Path, switch: str | None) -> str:
    """Why this module must not run here ("" when it may): only under a benchmark's temporary
    home, and only when the benchmark asked for it by name."""
    if switch != "off":
        return f"{SWITCH}=off is not set"
    if not any(part.startswith(BENCH_DIR_PREFIX) for part in home.resolve().parts):
        return f"CASEBRIDGE_HOME {home} is not a benchmark's temporary home ({BENCH_DIR_PREFIX}*)"
    return ""


def _nothing(*_args: Any, **_kwargs: Any) -> None:
    return None


class AuditOff(AppConfig):
    name = "bench.audit_off"
    label = "bench_audit_off"

    def ready(self) -> None:
        why = refusal(Path(_portal.HOME), os.environ.get(SWITCH))
        if why:
            raise ImproperlyConfigured(f"bench.audit_off refuses to turn the audit off: {why}")
        from casebridge.audit import api

        # record()/record_many() look these up at each call: the event is still built and checked,
        # then neither inserted, queued nor sealed.
        api._insert_with_queue_row = _nothing
        api._insert_batch_sqlite = _nothing
        api._insert_batch_with_queue_rows = _nothing
        api._seal_after_commit = _nothing
