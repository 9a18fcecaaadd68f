"""Background tasks shared by every app: mail delivery and the periodic housekeeping tick.

Core knows no domain app: each app registers its own periodic work from its AppConfig.ready()
with `register_periodic`, and `housekeeping` runs whatever was registered.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass

from django.core.mail import send_mail
from django_tasks import task

logger = logging.getLogger(__name__)

# Phases order the tick: the audit chain is sealed before the apps' work runs and signed after
# it, so a checkpoint covers the events that work has just written.
FIRST, NORMAL, LAST = 0, 50, 100


@dataclass(frozen=True)
class PeriodicWork:
    name: str
    run: Callable[[], object]
    phase: int


_PERIODIC: dict[str, PeriodicWork] = {}


def register_periodic(name: str, run: Callable[[], object], *, phase: int = NORMAL) -> None:
    """Add idempotent work to every housekeeping tick (it may run on several workers at once).

    Registering the same name again replaces the entry, so a reloaded AppConfig does not run its
    work twice; two apps choosing one name would be a bug, hence the dotted `app.work` names.
    """
    _PERIODIC[name] = PeriodicWork(name, run, phase)


def periodic_work() -> list[PeriodicWork]:
    """The registered work in the order a tick runs it (phase, then name, so it is stable)."""
    return sorted(_PERIODIC.values(), key=lambda work: (work.phase, work.name))


@task()
def deliver_mail(to: list[str], subject: str, body: str) -> None:
    # Subjects and bodies are built from templates that carry no PHI (case numbers and links).
    send_mail(subject, body, None, to, fail_silently=False)
    logger.info("mail delivered to %d recipient(s)", len(to))


@task()
def housekeeping() -> None:
    """Idempotent periodic work; safe to run on several workers at once. One failing piece is
    logged and does not keep the others (audit sealing and checkpoints above all) from running."""
    failed = []
    for work in periodic_work():
        try:
            work.run()
        except Exception:
            logger.exception("periodic work %s failed", work.name)
            failed.append(work.name)
    if failed:
        raise RuntimeError(f"periodic work failed: {', '.join(failed)}")
