"""Alert rules read the sealed audit log in the background and raise alerts that compliance
officers see with a badge, get by e-mail without patient data, and acknowledge with a note;
every raise and acknowledgement is an event; repeats fold into the open alert."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from django.contrib.auth.models import AnonymousUser
from django.core import mail
from django.core.management import call_command
from django.core.management.base import CommandError
from django.db import connection
from django.urls import reverse
from django.utils import timezone

from casebridge.audit import alerts, chain, triggers
from casebridge.audit.api import record
from casebridge.audit.models import Alert, AlertCursor, AlertKind, AlertRule, Event, Seal
from casebridge.core.testing import Personas, signed_in_client

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def _rules_start_now() -> None:
    """The rules judge only this test's events, whatever earlier tests left in the log (as an
    upgraded installation starts at the chain's head: migration 0005)."""
    chain.seal_pending()
    head = Seal.objects.order_by("-seq").values_list("seq", flat=True).first() or 0
    AlertCursor.objects.update_or_create(pk=1, defaults={"last_seq": head})


def _run(capture: Any) -> int:
    chain.seal_pending()
    with capture(execute=True):  # the alert e-mails leave once the run commits
        return alerts.run()


def _downloads(personas: Personas, n: int) -> None:
    for _ in range(n):
        record("file.downloaded", actor=personas.members["staff"], organization=personas.practice, details={})


def test_a_mass_download_raises_one_alert_emailed_to_the_compliance_officer(
    personas: Personas, django_capture_on_commit_callbacks: Any
) -> None:
    _downloads(personas, 51)
    _run(django_capture_on_commit_callbacks)
    alert = Alert.objects.get()
    assert alert.kind == AlertKind.MASS_DOWNLOAD and alert.organization == personas.practice
    assert "downloaded 51 files within 10 minutes" in alert.summary
    assert Event.objects.filter(action="alert.raised", organization_id=personas.practice.pk).count() == 1
    [message] = mail.outbox
    assert message.to == [personas.members["compliance_officer"].email]
    assert "Mass download" in message.subject and "/alerts/" in message.body
    # More downloads within the window fold into the open alert.
    _downloads(personas, 10)
    _run(django_capture_on_commit_callbacks)
    assert Alert.objects.count() == 1 and len(mail.outbox) == 1


def test_below_the_threshold_nothing_is_raised_and_each_event_is_read_once(
    personas: Personas, django_capture_on_commit_callbacks: Any
) -> None:
    _downloads(personas, 50)
    assert _run(django_capture_on_commit_callbacks) >= 50
    assert _run(django_capture_on_commit_callbacks) == 0
    assert not Alert.objects.exists()


def test_judging_holds_no_write_lock_and_a_runner_that_lost_the_race_raises_nothing_twice(
    personas: Personas, django_capture_on_commit_callbacks: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    _downloads(personas, 51)
    judge = alerts._judge
    depth: list[int] = []

    def judge_while_another_runner_finishes(*args: Any) -> None:
        depth.append(len(connection.atomic_blocks))
        judge(*args)
        AlertCursor.objects.filter(pk=1).update(last_seq=10**9)  # it judged these and moved on

    monkeypatch.setattr(alerts, "_judge", judge_while_another_runner_finishes)
    assert _run(django_capture_on_commit_callbacks) == 0
    assert not Alert.objects.exists() and not mail.outbox
    # Only the test's own transaction is open while judging: the run opened none around it.
    assert depth and set(depth) == {len(connection.atomic_blocks)}


def test_repeated_failed_sign_ins_and_a_deactivated_account(
    personas: Personas, django_capture_on_commit_callbacks: Any
) -> None:
    for _ in range(5):
        record(
            "auth.login.failed", actor=AnonymousUser(), actor_label=personas.members["staff"].email, outcome="failure"
        )
    record("auth.login.failed", actor=AnonymousUser(), actor_label=personas.deactivated.email, outcome="failure")
    record("auth.login.failed", actor=AnonymousUser(), actor_label="nobody@nowhere.test", outcome="failure")
    _run(django_capture_on_commit_callbacks)
    kinds = sorted(Alert.objects.values_list("kind", flat=True))
    assert kinds == [AlertKind.DEACTIVATED_ATTEMPT, AlertKind.FAILED_SIGNINS]
    assert all(a.organization == personas.practice for a in Alert.objects.all())


def test_emergency_access_and_a_surge_of_refusals(personas: Personas, django_capture_on_commit_callbacks: Any) -> None:
    record("breakglass.granted", actor=personas.members["owner"], organization=personas.practice)
    for _ in range(20):
        record("access.denied", actor=personas.members["staff"], organization=personas.practice, outcome="denied")
    _run(django_capture_on_commit_callbacks)
    assert sorted(Alert.objects.values_list("kind", flat=True)) == [AlertKind.DENIED_SURGE, AlertKind.EMERGENCY_ACCESS]


def test_outside_hours_is_off_until_the_organization_sets_its_hours(
    personas: Personas, django_capture_on_commit_callbacks: Any
) -> None:
    record("case.viewed", actor=personas.members["staff"], organization=personas.practice)
    _run(django_capture_on_commit_callbacks)
    assert not Alert.objects.exists()
    hour = timezone.localtime().hour
    start, end = ((hour + 1) % 23, (hour + 1) % 23 + 1)  # an hour that is not now
    AlertRule.objects.create(
        organization=personas.practice, kind=AlertKind.AFTER_HOURS, enabled=True, start_hour=start, end_hour=end
    )
    record("case.viewed", actor=personas.members["staff"], organization=personas.practice)
    _run(django_capture_on_commit_callbacks)
    assert Alert.objects.get().kind == AlertKind.AFTER_HOURS


def test_a_failed_audit_verification_alerts_every_organization(
    personas: Personas, django_capture_on_commit_callbacks: Any
) -> None:
    record("org.created", organization=personas.practice)
    chain.seal_pending()
    triggers.remove(connection)
    with connection.cursor() as cursor:
        cursor.execute("UPDATE audit_event SET action = 'org.updated'")
    with django_capture_on_commit_callbacks(execute=True), pytest.raises(CommandError):
        call_command("audit", "verify")
    raised = Alert.objects.filter(kind=AlertKind.AUDIT_FAILURE)
    assert {a.organization_id for a in raised} == {personas.practice.pk, personas.other_practice.pk, personas.lab.pk}


def test_the_alerts_page_badge_and_acknowledgement(personas: Personas, django_capture_on_commit_callbacks: Any) -> None:
    _downloads(personas, 60)
    _run(django_capture_on_commit_callbacks)
    alert = Alert.objects.get()
    officer = signed_in_client(personas.members["compliance_officer"])
    page = officer.get(reverse("alerts", args=[personas.practice.slug])).content.decode()
    assert "Mass download" in page and '1<span class="visually-hidden"> open</span>' in page
    url = reverse("alert_acknowledge", args=[personas.practice.slug, alert.pk])
    officer.post(url, {"note": " "})
    alert.refresh_from_db()
    assert alert.acknowledged_at is None  # a note is required
    officer.post(url, {"note": "Year-end export of the lab's designs, approved by Dr. Smith."})
    alert.refresh_from_db()
    assert alert.acknowledged_at is not None and alert.acknowledged_by == personas.members["compliance_officer"]
    acknowledged = Event.objects.get(action="alert.acknowledged")
    assert "Dr. Smith" not in str(acknowledged.details)  # the note stays with the alert
    assert officer.post(url, {"note": "again"}).status_code == 302
    assert Event.objects.filter(action="alert.acknowledged").count() == 1


def test_who_may_see_and_change_alerts(personas: Personas, django_capture_on_commit_callbacks: Any) -> None:
    _downloads(personas, 60)
    _run(django_capture_on_commit_callbacks)
    alert = Alert.objects.get()
    staff = signed_in_client(personas.members["staff"])
    assert staff.get(reverse("alerts", args=[personas.practice.slug])).status_code == 403
    outsider = signed_in_client(personas.outsider)
    url = reverse("alert_acknowledge", args=[personas.other_practice.slug, alert.pk])
    assert outsider.post(url, {"note": "mine now"}).status_code == 404
    auditor = signed_in_client(personas.members["auditor"])
    rules = reverse("alert_rules", args=[personas.practice.slug])
    assert auditor.get(reverse("alerts", args=[personas.practice.slug])).status_code == 200
    assert auditor.post(rules, {}).status_code == 403
    alert.refresh_from_db()
    assert alert.acknowledged_at is None


def test_a_compliance_officer_changes_a_threshold_and_bad_hours_are_refused(personas: Personas) -> None:
    officer = signed_in_client(personas.members["compliance_officer"])
    url = reverse("alert_rules", args=[personas.practice.slug])
    form: dict[str, str] = {}
    for kind, setting in alerts.DEFAULT_RULES.items():
        form.update(
            {
                f"{kind}-threshold": str(setting.threshold),
                f"{kind}-window_minutes": str(setting.window_minutes),
                f"{kind}-start_hour": str(setting.start_hour),
                f"{kind}-end_hour": str(setting.end_hour),
            }
        )
        if setting.enabled:
            form[f"{kind}-enabled"] = "on"
    assert officer.post(url, {**form, "mass_download-threshold": "200"}).status_code == 302
    assert alerts.rules_of(personas.practice)[AlertKind.MASS_DOWNLOAD].threshold == 200
    assert Event.objects.filter(action="alert.rules_changed").exists()
    refused = officer.post(url, {**form, "after_hours-start_hour": "20", "after_hours-end_hour": "8"})
    assert refused.status_code == 400 and "must end after they start" in refused.content.decode()
    assert alerts.rules_of(personas.practice)[AlertKind.AFTER_HOURS].start_hour == 7
    assert timedelta(minutes=alerts.rules_of(personas.practice)[AlertKind.MASS_DOWNLOAD].window_minutes)


def test_a_timeline_counts_the_weights_inside_a_window_bounds_included() -> None:
    t0 = timezone.now()
    line = alerts.Timeline([(t0 + timedelta(minutes=m), w) for m, w in [(9, 1), (0, 3), (5, 2), (10, 4)]])
    assert line.within(t0, t0 + timedelta(minutes=10)) == 10
    assert line.within(t0 + timedelta(minutes=1), t0 + timedelta(minutes=9)) == 3
    assert line.within(t0 + timedelta(minutes=5), t0 + timedelta(minutes=5)) == 2
    assert line.within(t0 + timedelta(minutes=11), t0 + timedelta(minutes=20)) == 0


def test_a_run_folds_repeats_in_memory_exactly_as_one_decision_at_a_time_would(personas: Personas) -> None:
    """One run's decisions about the same subject fold into the alert raised first, with no query
    each, until an event's window no longer reaches back to that alert's creation: then a new one."""
    now = timezone.now()
    window = timedelta(minutes=10)

    def decisions(org: Any) -> list[tuple[tuple[Any, ...], dict[str, Any]]]:
        at = [now, now + timedelta(minutes=1), now + timedelta(minutes=2), now + timedelta(minutes=15)]
        return [
            (
                (org, AlertKind.DENIED_SURGE, "refusals"),
                {"subject": "organization", "window": window, "event": Event(occurred_at=t), "seq": seq},
            )
            for seq, t in enumerate(at, start=1)
        ]

    alerts._raise_decided(decisions(personas.practice))
    for args, kwargs in decisions(personas.other_practice):  # the reference: one at a time
        alerts._raise(*args, **kwargs)

    def outcome(org: Any) -> list[tuple[int | None, int | None]]:
        return list(Alert.objects.filter(organization=org).order_by("first_seq").values_list("first_seq", "last_seq"))

    assert outcome(personas.practice) == [(1, 3), (4, 4)]
    assert outcome(personas.other_practice) == outcome(personas.practice)


def test_counts_carry_across_small_runs_as_in_one(personas: Personas, django_capture_on_commit_callbacks: Any) -> None:
    """The counted events are kept between runs and brought up to date with what was sealed
    since: 51 downloads judged three at a time raise the alert at the 51st, as one run does."""
    _downloads(personas, 50)
    chain.seal_pending()
    while alerts.run(batch=3):
        pass
    assert not Alert.objects.exists()
    _downloads(personas, 1)
    chain.seal_pending()
    with django_capture_on_commit_callbacks(execute=True):
        assert alerts.run(batch=3) == 1
    assert "downloaded 51 files" in Alert.objects.get().summary


def test_counts_kept_from_another_history_are_not_trusted(
    personas: Personas, django_capture_on_commit_callbacks: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """What a process kept names the seal it read up to and that seal's hash; a database restored
    or rolled back under it has another seal there, and the counts are read again."""
    _downloads(personas, 1)
    _run(django_capture_on_commit_callbacks)
    head = Seal.objects.order_by("-seq").first()
    assert head is not None and alerts._kept is not None and alerts._kept.seq == head.seq
    key = ("downloads", personas.practice.pk, str(personas.members["staff"].pk))
    assert [weight for _, weight in alerts._kept.entries[key]] == [1]
    # The same seq in another history: 60 downloads this database never saw.
    forged = [(timezone.now() - timedelta(minutes=1), 1)] * 60
    other = alerts._Kept(timezone.now() - timedelta(days=1), head.seq, "f" * 64, {key: forged})
    monkeypatch.setattr(alerts, "_kept", other)
    _downloads(personas, 1)
    _run(django_capture_on_commit_callbacks)
    assert not Alert.objects.exists()
    assert alerts._kept is not other and [weight for _, weight in alerts._kept.entries[key]] == [1, 1]
    # Kept with the right hash, the same 60 would count: the check is what keeps them out.
    trusted = alerts._Kept(timezone.now() - timedelta(days=1), alerts._kept.seq, alerts._kept.seal_hash, {key: forged})
    monkeypatch.setattr(alerts, "_kept", trusted)
    _downloads(personas, 1)
    _run(django_capture_on_commit_callbacks)
    assert "downloaded 61 files" in Alert.objects.get().summary


def test_a_tick_judges_the_whole_backlog_batch_by_batch_within_its_budget(personas: Personas) -> None:
    """The worker's tick runs the rules once a minute: one batch a tick would fall behind for
    good under load, so a run drains what was sealed, a batch per transaction, until its budget."""
    _downloads(personas, 25)
    chain.seal_pending()
    assert alerts.run(batch=10, budget_seconds=0) == 10  # the budget spent after the first batch
    assert alerts.run(batch=10) == 15  # the rest, in two batches
    assert alerts.run(batch=10) == 0
    assert AlertCursor.objects.get().last_seq == Seal.objects.order_by("-seq").first().seq
