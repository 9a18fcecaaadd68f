"""On SQLite a transaction that records events chains them just before its commit, in the same
commit: events and seals reach the disk together, and a request's events are chained before its
response is sent (audit/db/sqlite3/base.py; docs/audit.md, "Sealing inside the writer's commit").
These tests commit for real (transactional_db): the backend acts at the commit."""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from django.conf import settings
from django.core.signals import request_finished
from django.db import close_old_connections, connection, transaction
from django.http import HttpRequest, HttpResponse
from django.http.response import HttpResponseBase
from django.test import RequestFactory

from casebridge.audit import chain
from casebridge.audit.api import record, record_many
from casebridge.audit.models import Checkpoint, Event, PendingSeal, Seal
from casebridge.core.middleware import RequestContextMiddleware

pytestmark = [
    pytest.mark.usefixtures("transactional_db"),
    pytest.mark.sqlite_pass_only,  # the SQLite backend's own behaviour
]


class _Abandon(Exception):
    pass


def _serve(view: Callable[[], None]) -> HttpResponseBase:
    def respond(request: HttpRequest) -> HttpResponse:
        view()
        return HttpResponse("ok")

    return RequestContextMiddleware(respond)(RequestFactory().get("/"))


def _close(response: HttpResponseBase) -> None:
    # What the WSGI server does after the last byte, without closing the database connection.
    request_finished.disconnect(close_old_connections)
    try:
        response.close()
    finally:
        request_finished.connect(close_old_connections)


def _chain() -> list[tuple[int, int]]:
    return list(Seal.objects.order_by("seq").values_list("seq", "event_id"))


def test_a_requests_events_are_chained_before_its_response() -> None:
    events: list[Event] = []
    response = _serve(lambda: events.append(record("org.created", details={"n": 1})))
    assert _chain() == [(1, events[0].pk)] and not PendingSeal.objects.exists()  # not waiting for close
    _close(response)
    assert _chain() == [(1, events[0].pk)]
    assert chain.verify().ok


def test_a_transaction_chains_all_its_events_at_its_commit_in_order() -> None:
    with transaction.atomic():
        first = record("org.created", details={"n": 1})
        rest = record_many([{"action": "org.created", "details": {"n": n}} for n in (2, 3)])
        assert PendingSeal.objects.count() == 3 and not Seal.objects.exists()  # not before the commit
    assert _chain() == [(1, first.pk), (2, rest[0].pk), (3, rest[1].pk)]
    assert not PendingSeal.objects.exists()
    assert chain.verify().ok


def test_a_rolled_back_transaction_leaves_nothing_and_the_next_commit_chains_on() -> None:
    with pytest.raises(_Abandon), transaction.atomic():
        record("org.created", details={"n": 1})
        raise _Abandon
    assert not Event.objects.exists() and not Seal.objects.exists() and not PendingSeal.objects.exists()
    with transaction.atomic():  # no events: nothing to chain
        pass
    kept = record("org.created", details={"n": 2})
    assert _chain() == [(1, kept.pk)]


def test_when_chaining_fails_inside_the_commit_the_events_still_commit_and_are_chained_after_it(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    real_insert = chain._insert_seals
    calls = 0

    def insert_then_fail(*args: Any) -> None:
        nonlocal calls
        calls += 1
        real_insert(*args)  # half done: the seals are written, then the pass fails
        if calls == 1:
            raise RuntimeError("disk hiccup inside the seal pass")

    monkeypatch.setattr(chain, "_insert_seals", insert_then_fail)
    events: list[Event] = []
    with caplog.at_level(logging.ERROR, logger="casebridge.audit"):
        response = _serve(lambda: events.append(record("org.created", details={"n": 1})))
    assert "audit sealing deferred to the after-commit pass" in caplog.text
    # The event committed; the half-written seal went with the savepoint; it waits in the queue
    # (unless a live-server test left the connection shared: then the middleware seals at once).
    assert Event.objects.filter(pk=events[0].pk).exists()
    if not connection.allow_thread_sharing:
        assert not Seal.objects.exists() and PendingSeal.objects.count() == 1
    _close(response)  # the after-commit pass, once the response is sent
    assert _chain() == [(1, events[0].pk)] and not PendingSeal.objects.exists()
    assert chain.verify().ok


def test_a_checkpoint_signed_inside_the_commit_is_witnessed_once_it_has_committed(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(chain, "CHECKPOINT_EVERY", 3)
    witnessed = Path(settings.AUDIT_WITNESS_DIR)
    with transaction.atomic():
        record_many([{"action": "org.created", "details": {"n": n}} for n in range(3)])
        assert not list(witnessed.glob("checkpoint-*.json"))
    files = list(witnessed.glob("checkpoint-*.json"))
    assert [json.loads(f.read_text())["tree_size"] for f in files] == [3]
    assert json.loads(files[0].read_text()) == chain.signed_head(Checkpoint.objects.get(seq=3))
    assert chain.verify().ok
