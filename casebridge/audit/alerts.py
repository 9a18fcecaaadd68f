"""Alert rules over the audit log, run in the background worker on newly sealed events.

The request path only records events, as always; `run()` (a periodic task of the worker's
housekeeping tick) reads the chain from where it stopped (`AlertCursor`), judges each new event
by its organization's rules, and raises `Alert`s. Each alert is itself an audit event
(`alert.raised`) and is e-mailed, without patient data, to the organization's compliance
officers (its owners and administrators when it has none). Repeats fold: while an alert of
the same kind about the same person (or organization) is open and younger than the rule's
window, new matching events extend it instead of raising another.

The rules (thresholds per organization, `AlertRule`; defaults in `DEFAULT_RULES`):

- mass download: more than N files by one person within M minutes (single downloads count 1,
  a case's "Download all" its number of files);
- failed sign-ins: N failed passwords or second-factor codes for one account within M minutes,
  raised in every organization the account belongs to;
- deactivated account: any sign-in attempt with the address of a deactivated account, in the
  organizations it belonged to;
- emergency access: every grant;
- refused requests: N refusals (`access.denied`) in the organization within M minutes;
- outside hours (off by default): a person's action outside [start, end) server time;
- audit failure: `audit verify` (or a restore test) found the chain, a checkpoint or a
  witness out of order: raised in every organization (`raise_audit_failure`).
"""

from __future__ import annotations

import time
from bisect import bisect_left, bisect_right
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from django.db import transaction
from django.db.models import F, Max, Min, Q, QuerySet
from django.urls import reverse
from django.utils import timezone

from casebridge.accounts.models import User
from casebridge.audit.api import record
from casebridge.audit.models import Alert, AlertCursor, AlertKind, AlertRule, Event, Seal
from casebridge.core.mail import absolute_url, queue_mail
from casebridge.orgs.models import Membership, Organization
from casebridge.orgs.queries import compliance_recipients

BATCH = 5000
# What the rules read of an event (one model per event, not a seal and its event: a third of
# the judging time was building models).
JUDGED_FIELDS = (
    "id",
    "occurred_at",
    "actor_type",
    "actor_id",
    "actor_label",
    "organization_id",
    "action",
    "target_id",
    "details",
)
DRAIN_SECONDS = 30.0  # of a run, at most: the tick's other work waits for it
DOWNLOADS = ("file.downloaded", "case.files_downloaded")
SIGN_IN_FAILURES = ("auth.login.failed", "auth.mfa.failed")


@dataclass(frozen=True)
class RuleSetting:
    enabled: bool
    threshold: int = 1
    window_minutes: int = 10
    start_hour: int = 7
    end_hour: int = 19


DEFAULT_RULES: dict[str, RuleSetting] = {
    AlertKind.MASS_DOWNLOAD: RuleSetting(True, threshold=50, window_minutes=10),
    AlertKind.FAILED_SIGNINS: RuleSetting(True, threshold=5, window_minutes=15),
    AlertKind.DEACTIVATED_ATTEMPT: RuleSetting(True),
    AlertKind.EMERGENCY_ACCESS: RuleSetting(True),
    AlertKind.DENIED_SURGE: RuleSetting(True, threshold=20, window_minutes=5),
    AlertKind.AFTER_HOURS: RuleSetting(False, window_minutes=24 * 60),
    AlertKind.AUDIT_FAILURE: RuleSetting(True, window_minutes=24 * 60),
}


def rules_of(organization: Organization) -> dict[str, RuleSetting]:
    rules = dict(DEFAULT_RULES)
    for rule in AlertRule.objects.filter(organization=organization):
        rules[rule.kind] = RuleSetting(
            rule.enabled, rule.threshold, rule.window_minutes, rule.start_hour, rule.end_hour
        )
    return rules


def open_alerts(organization: Organization) -> QuerySet[Alert]:
    return Alert.objects.filter(organization=organization, acknowledged_at__isnull=True)


# --- raising --------------------------------------------------------------------------------
def _raise(
    organization: Organization,
    kind: str,
    summary: str,
    *,
    subject: str,
    window: timedelta,
    event: Event | None = None,
    seq: int | None = None,
    **details: Any,
) -> tuple[Alert, bool]:
    """Raise an alert, or fold the event into an open one about the same subject: that alert,
    and whether it is new."""
    since = (event.occurred_at if event is not None else timezone.now()) - window
    folded = open_alerts(organization).filter(kind=kind, subject_key=subject, created_at__gte=since).first()
    if folded is not None:
        if seq is not None:
            Alert.objects.filter(pk=folded.pk).update(last_seq=seq)
        return folded, False
    alert = Alert.objects.create(
        organization=organization,
        kind=kind,
        summary=summary[:300],
        subject_key=subject[:300],
        details=details,
        first_seq=seq,
        last_seq=seq,
    )
    record(
        "alert.raised",
        organization=organization,
        target=alert,
        details={"alert": str(alert.pk), "kind": kind, "seq": seq, **details},
    )
    queue_mail(
        compliance_recipients(organization),
        "alert",
        {
            "organization": organization.name,
            "kind": AlertKind(kind).label,
            "summary": alert.summary,
            "link": absolute_url(reverse("alerts", args=[organization.slug])),
        },
    )
    return alert, True


def _raise_decided(decided: list[tuple[tuple[Any, ...], dict[str, Any]]]) -> None:
    """`_raise` for each decision, in order and with the same outcome, but an alert raised or
    folded into here is remembered: a later event that folds into it again costs no query, and
    its last_seq moves once at the end. Each download of a mass download, each refusal of a
    surge, folded with two queries of its own (a third of the judging time: profiled)."""
    remembered: dict[tuple[Any, str, str], Alert] = {}
    moved: dict[Any, int] = {}
    for args, kwargs in decided:
        organization, kind = args[0], args[1]
        key = (organization.pk, kind, kwargs["subject"])
        event, seq = kwargs.get("event"), kwargs.get("seq")
        since = (event.occurred_at if event is not None else timezone.now()) - kwargs["window"]
        alert = remembered.get(key)
        if alert is None or alert.created_at < since:  # the query _raise makes would not find it
            remembered[key], _new = _raise(*args, **kwargs)
            moved.pop(remembered[key].pk, None)
        elif seq is not None:
            moved[alert.pk] = seq
    for pk, seq in moved.items():
        Alert.objects.filter(pk=pk).update(last_seq=seq)


def _organizations_of_address(address: str) -> tuple[User | None, list[Organization]]:
    user = User.objects.filter(email__iexact=address).first() if address else None
    if user is None:
        return None, []
    return user, list(Organization.objects.filter(memberships__user=user).distinct())


def _window(setting: RuleSetting) -> timedelta:
    return timedelta(minutes=setting.window_minutes)


def _files_in(details: Any) -> int:
    """A download's weight: a case's "Download all" counts its number of files."""
    files = details.get("files") if isinstance(details, dict) else None
    return len(files) if isinstance(files, list) else 1


def _judge(
    event: Event,
    seq: int,
    rules_cache: dict[Any, dict[str, RuleSetting]],
    raise_: Callable[..., object],
    look: Lookback,
) -> None:
    """Decide which alerts `event` raises; each is handed to `raise_` (with `_raise`'s arguments)."""

    def rules(org: Organization) -> dict[str, RuleSetting]:
        if org.pk not in rules_cache:
            rules_cache[org.pk] = rules_of(org)
        return rules_cache[org.pk]

    if event.action in SIGN_IN_FAILURES:
        address = event.actor_label if event.action == "auth.login.failed" else ""
        user, organizations = _organizations_of_address(address)
        if event.action == "auth.mfa.failed":
            user = User.objects.filter(pk=event.actor_id).first() if event.actor_id else None
            organizations = list(Organization.objects.filter(memberships__user=user).distinct()) if user else []
        if user is None:
            return
        deactivated = not user.is_active or not Membership.objects.filter(user=user, is_active=True).exists()
        for org in organizations:
            setting = rules(org)[AlertKind.FAILED_SIGNINS]
            if deactivated and rules(org)[AlertKind.DEACTIVATED_ATTEMPT].enabled:
                raise_(
                    org,
                    AlertKind.DEACTIVATED_ATTEMPT,
                    f"Sign-in attempt with the deactivated account {user.email}",
                    subject=str(user.pk),
                    window=_window(rules(org)[AlertKind.DEACTIVATED_ATTEMPT]),
                    event=event,
                    seq=seq,
                    user=str(user.pk),
                )
            if not setting.enabled:
                continue
            since = event.occurred_at - _window(setting)
            count = Event.objects.filter(
                Q(actor_label__iexact=user.email) | Q(actor_id=str(user.pk)),
                id__gte=look.floor,
                action__in=SIGN_IN_FAILURES,
                occurred_at__gte=since,
                occurred_at__lte=event.occurred_at,
            ).count()
            if count >= setting.threshold:
                raise_(
                    org,
                    AlertKind.FAILED_SIGNINS,
                    f"{count} failed sign-ins or codes for {user.email} within {setting.window_minutes} minutes",
                    subject=str(user.pk),
                    window=_window(setting),
                    event=event,
                    seq=seq,
                    user=str(user.pk),
                    count=count,
                )
        return
    if event.organization_id is None:
        return
    found = look.organization(event.organization_id)
    if found is None:
        return
    org = found
    org_rules = rules(org)
    if event.action == "breakglass.granted" and org_rules[AlertKind.EMERGENCY_ACCESS].enabled:
        raise_(
            org,
            AlertKind.EMERGENCY_ACCESS,
            f"Emergency access granted by {event.actor_label or 'someone'}",
            subject=f"grant:{event.target_id or event.pk}",
            window=_window(org_rules[AlertKind.EMERGENCY_ACCESS]),
            event=event,
            seq=seq,
        )
    setting = org_rules[AlertKind.MASS_DOWNLOAD]
    if event.action in DOWNLOADS and event.actor_id and setting.enabled:
        files = look.downloads(org.pk, event.actor_id).within(event.occurred_at - _window(setting), event.occurred_at)
        if files > setting.threshold:
            raise_(
                org,
                AlertKind.MASS_DOWNLOAD,
                f"{event.actor_label or 'Someone'} downloaded {files} files within {setting.window_minutes} minutes",
                subject=event.actor_id,
                window=_window(setting),
                event=event,
                seq=seq,
                actor=event.actor_id,
                files=files,
            )
    setting = org_rules[AlertKind.DENIED_SURGE]
    if event.action == "access.denied" and setting.enabled:
        refused = look.refusals(org.pk).within(event.occurred_at - _window(setting), event.occurred_at)
        if refused >= setting.threshold:
            raise_(
                org,
                AlertKind.DENIED_SURGE,
                f"{refused} refused requests within {setting.window_minutes} minutes",
                subject="organization",
                window=_window(setting),
                event=event,
                seq=seq,
                count=refused,
            )
    setting = org_rules[AlertKind.AFTER_HOURS]
    if setting.enabled and event.actor_type == "user" and event.actor_id:
        hour = timezone.localtime(event.occurred_at).hour
        if not setting.start_hour <= hour < setting.end_hour:
            raise_(
                org,
                AlertKind.AFTER_HOURS,
                f"{event.actor_label or 'Someone'} was active at {timezone.localtime(event.occurred_at):%H:%M}, "
                f"outside {setting.start_hour}:00-{setting.end_hour}:00",
                subject=event.actor_id,
                window=_window(setting),
                event=event,
                seq=seq,
                actor=event.actor_id,
            )


COUNTED = (AlertKind.MASS_DOWNLOAD, AlertKind.FAILED_SIGNINS, AlertKind.DENIED_SURGE)


class Timeline:
    """Weighted times of one kind of event (a person's downloads, an organization's refusals),
    sorted, for counting those in a window by bisection."""

    def __init__(self, entries: list[tuple[datetime, int]]) -> None:
        entries.sort(key=lambda entry: entry[0])
        self.times = [at for at, _ in entries]
        self.running = [0]
        for _, weight in entries:
            self.running.append(self.running[-1] + weight)

    def within(self, since: datetime, until: datetime) -> int:
        """The total weight of the entries at `since` <= time <= `until`."""
        return self.running[bisect_right(self.times, until)] - self.running[bisect_left(self.times, since)]


COUNTED_ACTIONS = (*DOWNLOADS, "access.denied")


@dataclass
class _Kept:
    """The counted events of the windows a process judged last, kept for its next run."""

    since: datetime  # every counted event sealed at or before `seq` and at or after this time
    seq: int
    seal_hash: str  # seal #seq's hash: another database (a restore, a test rolled back) starts over
    entries: dict[tuple[Any, ...], list[tuple[datetime, int]]]


_kept: _Kept | None = None


class Lookback:
    """What one run's rules look back at: the counted events (downloads, refusals) of the
    windows its events reach back to, as timelines. Reading them per judged event counted every
    recent download of a person again for each of them (76 events judged per second at 50,000
    events, bench/audit_throughput.py --alerts); reading them once per run still read the whole
    window again each run, which is most of the judging time when runs are small and frequent
    (2,380 events/s in runs of 300). So they are kept between runs in this process, and each run
    adds the counted events sealed since the last (by seq, a range of the seal table's key) and
    drops those older than its earliest window. A timeline holds the sealed events; the sealer
    chains an event at its commit or right after it.

    `floor` is the lowest event id a counting window can reach from this run's events: the first
    id at or after the earliest event's time less the longest counting window (every event in a
    window has an id at or above it, so the failed sign-in counts stay exact)."""

    def __init__(self, events: Sequence[Event]) -> None:
        global _kept
        longest = max(DEFAULT_RULES[kind].window_minutes for kind in COUNTED)
        configured = AlertRule.objects.filter(kind__in=COUNTED).aggregate(longest=Max("window_minutes"))["longest"]
        self.since = min(event.occurred_at for event in events) - timedelta(minutes=max(longest, configured or 0))
        self._floor: int | None = None
        self._organizations: dict[Any, Organization | None] = {}
        self._timelines: dict[tuple[Any, ...], Timeline] = {}
        head = Seal.objects.order_by("-seq").values_list("seq", "hash").first() or (0, "")
        kept = _kept
        if kept is None or kept.since > self.since or not _still_sealed(kept):
            kept = _Kept(self.since, 0, "", {})
            self._add(kept, Seal.objects.filter(seq__lte=head[0], event__occurred_at__gte=self.since))
        elif head[0] > kept.seq:
            self._add(kept, Seal.objects.filter(seq__gt=kept.seq, seq__lte=head[0]))
        kept.seq, kept.seal_hash = head
        if kept.since < self.since:
            for key, entries in list(kept.entries.items()):
                entries.sort(key=lambda entry: entry[0])
                del entries[: bisect_left(entries, (self.since, -1))]
                if not entries:
                    del kept.entries[key]
            kept.since = self.since
        _kept = kept
        self._kept = kept

    @staticmethod
    def _add(kept: _Kept, seals: QuerySet[Seal]) -> None:
        rows = seals.filter(event__action__in=COUNTED_ACTIONS).values_list(
            "event__action", "event__organization_id", "event__actor_id", "event__occurred_at", "event__details"
        )
        for action, organization_id, actor_id, at, details in rows:
            if action == "access.denied":
                kept.entries.setdefault(("refusals", organization_id), []).append((at, 1))
            else:
                kept.entries.setdefault(("downloads", organization_id, actor_id), []).append((at, _files_in(details)))

    @property
    def floor(self) -> int:
        if self._floor is None:
            self._floor = Event.objects.filter(occurred_at__gte=self.since).aggregate(floor=Min("id"))["floor"] or 0
        return self._floor

    def organization(self, pk: Any) -> Organization | None:
        if pk not in self._organizations:
            self._organizations[pk] = Organization.objects.filter(pk=pk).first()
        return self._organizations[pk]

    def _timeline(self, key: tuple[Any, ...]) -> Timeline:
        if key not in self._timelines:
            self._timelines[key] = Timeline(list(self._kept.entries.get(key, [])))
        return self._timelines[key]

    def downloads(self, organization_id: Any, actor_id: str) -> Timeline:
        """The person's downloads: a case's "Download all" weighs its number of files."""
        return self._timeline(("downloads", organization_id, actor_id))

    def refusals(self, organization_id: Any) -> Timeline:
        return self._timeline(("refusals", organization_id))


def _still_sealed(kept: _Kept) -> bool:
    return not kept.seq or Seal.objects.filter(seq=kept.seq, hash=kept.seal_hash).exists()


def run(*, batch: int = BATCH, budget_seconds: float = DRAIN_SECONDS) -> int:
    """Judge the events sealed since the last run, a batch at a time, until none are left or
    the budget is spent (the worker's tick calls this once a minute: a single batch a tick fell
    behind for good beyond 83 events/s); returns how many were read."""
    deadline = time.monotonic() + budget_seconds
    judged = 0
    while True:
        done = _run_batch(batch)
        judged += done
        if done < batch or time.monotonic() >= deadline:
            return judged


def _run_batch(batch: int) -> int:
    """Judge up to `batch` events sealed since the last run; returns how many were read.

    Judging only reads (the events, the rules, recent counts) and happens outside any
    transaction; the alerts it decides on are then raised, and the cursor moved, in one short
    transaction. On SQLite a write transaction holds the only write lock: judging thousands of
    events inside it stalled every request's audit write for seconds (found by
    bench/audit_throughput.py --db sqlite --alerts)."""
    start = AlertCursor.objects.filter(pk=1).values_list("last_seq", flat=True).first() or 0
    events = list(
        Event.objects.filter(seal__seq__gt=start)
        .annotate(seq=F("seal__seq"))
        .order_by("seal__seq")
        .only(*JUDGED_FIELDS)[:batch]
    )
    if not events:
        return 0
    decided: list[tuple[tuple[Any, ...], dict[str, Any]]] = []
    rules_cache: dict[Any, dict[str, RuleSetting]] = {}
    look = Lookback(events)
    for event in events:
        if not event.action.startswith("alert."):  # alerts never alert about themselves
            _judge(event, event.seq, rules_cache, lambda *args, **kwargs: decided.append((args, kwargs)), look)
    with transaction.atomic():
        cursor, _ = AlertCursor.objects.select_for_update().get_or_create(pk=1)
        if cursor.last_seq != start:
            return 0  # another runner judged these meanwhile: its alerts stand
        _raise_decided(decided)
        cursor.last_seq = events[-1].seq
        cursor.save(update_fields=["last_seq"])
    return len(events)


def raise_audit_failure(problem: str) -> int:
    """`audit verify` or a restore test failed: every organization's officers must know."""
    raised = 0
    for org in Organization.objects.all():
        setting = rules_of(org)[AlertKind.AUDIT_FAILURE]
        if (
            setting.enabled
            and _raise(
                org,
                AlertKind.AUDIT_FAILURE,
                f"Audit verification failed: {problem}"[:300],
                subject="audit",
                window=_window(setting),
            )[1]
        ):
            raised += 1
    return raised


def acknowledge(alert: Alert, user: User, note: str, at: datetime | None = None) -> None:
    """Close an alert with a note saying what was found (required): recorded as an event."""
    note = note.strip()
    if not note:
        raise ValueError("Say what you found or did: the note is kept with the alert.")
    with transaction.atomic():
        updated = Alert.objects.filter(pk=alert.pk, acknowledged_at__isnull=True).update(
            acknowledged_at=at or timezone.now(), acknowledged_by=user, note=note[:4000]
        )
        if not updated:
            raise ValueError("This alert was already acknowledged.")
        # The note is free text (it may name a patient): it stays with the alert, not in the log.
        record(
            "alert.acknowledged",
            actor=user,
            organization=alert.organization,
            target=alert,
            details={"alert": str(alert.pk), "kind": alert.kind},
        )
