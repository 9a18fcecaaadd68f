"""How the audit screens name an event's target. Events store the model and internal id (and
never change); an app that owns a model registers how to turn a batch of its ids into what a
person recognizes, such as a case number, so the log reads "Case CB-2026-000013" rather than
"cases.case · ca1964a4-…". Labels must carry no PHI: they are shown to auditors and exported."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Collection, Iterable
from uuid import UUID

from casebridge.audit.models import Event

# target ids (as stored) -> label, for the ids that still name something.
Labeller = Callable[[Collection[str]], dict[str, str]]

_LABELLERS: dict[str, Labeller] = {}


def register_labeller(target_type: str, labeller: Labeller) -> None:
    if target_type in _LABELLERS:
        raise ValueError(f"a labeller for {target_type!r} is registered twice")
    _LABELLERS[target_type] = labeller


def uuids(ids: Iterable[str]) -> list[UUID]:
    """The ids that are UUIDs (a malformed one in an old event must not fail the whole page)."""
    found = []
    for value in ids:
        try:
            found.append(UUID(value))
        except ValueError:
            continue
    return found


def target_labels(events: Collection[Event]) -> dict[int, str]:
    """Each event's target label by event id: its registered label, or "" when none applies (the
    stored type is shown then). One query per target type, whatever the number of events."""
    wanted: dict[str, set[str]] = defaultdict(set)
    for event in events:
        if event.target_type in _LABELLERS and event.target_id:
            wanted[event.target_type].add(event.target_id)
    labels = {target_type: _LABELLERS[target_type](ids) for target_type, ids in wanted.items()}
    return {event.pk: labels.get(event.target_type, {}).get(event.target_id, "") for event in events}
