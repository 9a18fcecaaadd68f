"""Sharing actions: create and revoke external links, send and check one-time codes, count
downloads. Each change is written with its audit event; a link found dead answers the same way
whatever killed it (revoked, expired, downloads used up, locked, case closed)."""

from __future__ import annotations

import secrets
from collections.abc import Iterable
from datetime import timedelta
from typing import Any

from django.core.cache import cache
from django.core.exceptions import ValidationError
from django.core.validators import validate_email
from django.db import transaction
from django.db.models import Count, Prefetch, QuerySet
from django.urls import reverse
from django.utils import timezone
from django.utils.crypto import constant_time_compare, salted_hmac

from casebridge.access.policy import OrgAccess, require_practice, require_sharing
from casebridge.accounts.models import User
from casebridge.audit.api import record
from casebridge.audit.models import Outcome
from casebridge.cases.models import Attachment, Case, Status
from casebridge.core.mail import absolute_url, queue_mail
from casebridge.core.secrets import digest, new_secret
from casebridge.deid import export as deid_export
from casebridge.sharing.models import Disclosure, ExternalLink, OneTimeCode, Recipient
from casebridge.vault import api as vault
from casebridge.vault.models import ObjectVersion

DEFAULT_EXPIRY_DAYS = 7
MAX_EXPIRY_DAYS = 30
MAX_DOWNLOADS_LIMIT = 50
CODE_TTL = timedelta(minutes=10)
MAX_FAILED_CODES = 5
# Verification lasts this long in the recipient's browser session (and never past the link).
VERIFICATION_TTL = timedelta(minutes=30)
# Throttles (count, window in seconds), kept in the shared cache so every app server agrees.
CODE_SENDS_PER_LINK = (5, 3600)
CODE_SENDS_PER_IP = (20, 3600)
CODE_CHECKS_PER_IP = (30, 3600)

SHAREABLE_REFUSED = {
    Status.DRAFT: "A draft cannot be shared: send the case first.",
    Status.COMPLETED: "A completed case cannot be shared.",
    Status.CANCELLED: "A cancelled case cannot be shared.",
}
CLOSED = {Status.COMPLETED, Status.CANCELLED}


class LinkUnavailable(Exception):
    """The link is dead (or never existed). The reason is for the audit log, never the visitor."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class Throttled(Exception):
    """Too many codes asked for or tried, from this address or for this link."""


class CodeRejected(Exception):
    """The code was wrong, expired or already used; `message` is safe to show."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason
        self.message = message


# --- reading ------------------------------------------------------------------------------
def link_for_token(token: str) -> ExternalLink | None:
    if not token or len(token) > 100:
        return None
    return ExternalLink.objects.select_related("case").filter(token_digest=digest(token)).first()


def dead_reason(link: ExternalLink) -> str | None:
    """Why the link no longer works, or None while it does."""
    case = link.case
    if link.revoked_at is not None:
        return "revoked"
    if link.locked_at is not None:
        return "locked"
    if case.status in CLOSED or case.archived_at is not None:
        return "case_closed"
    if link.expires_at <= timezone.now():
        return "expired"
    if link.downloads_used >= link.max_downloads:
        return "downloads_exhausted"
    return None


def shared_files_of_case(case: Case) -> list[Attachment]:
    """The case's files that still exist, each with its neutral name computable without a query."""
    files = Attachment.objects.select_related("stored_object").prefetch_related("stored_object__versions")
    with_files = Case.objects.prefetch_related(Prefetch("attachments", queryset=files)).get(pk=case.pk)
    return [a for a in with_files.attachments.all() if not a.stored_object.is_destroyed]


def current_size(attachment: Attachment) -> int:
    """Plaintext size of the file's current version (versions come prefetched)."""
    stored = attachment.stored_object
    return next((v.size for v in stored.versions.all() if v.version == stored.current_version), 0)


def shared_files(link: ExternalLink) -> list[Attachment]:
    """The files a link shares that still exist."""
    chosen = set(link.attachments.values_list("pk", flat=True))
    return [a for a in shared_files_of_case(link.case) if a.pk in chosen]


def links_of_case(case: Case) -> QuerySet[ExternalLink]:
    return (
        ExternalLink.objects.filter(case=case)
        .select_related("created_by", "case")
        .annotate(file_count=Count("attachments"))
        .order_by("-created_at")
    )


# --- the practice side --------------------------------------------------------------------
def _audit_practice(action: str, access: OrgAccess, link: ExternalLink, **details: Any) -> None:
    record(
        action,
        actor=access.actor,
        organization=access.organization,
        target=link,
        patient_ref=str(link.case.patient_id),
        details={"case": link.case.number, "link": str(link.pk), **details},
    )


def create_link(
    access: OrgAccess,
    case: Case,
    *,
    attachments: Iterable[Attachment | str],
    recipient_email: str,
    purpose: str,
    expires_in_days: int = DEFAULT_EXPIRY_DAYS,
    max_downloads: int = 5,
    deidentify: bool = True,
    deid_options: Iterable[str] = (),
    reason: str = "",
    clean_pixel: bool = False,
) -> ExternalLink:
    """Share chosen files of a case with one outside recipient; e-mail them the link (no code,
    no patient data) and record the disclosure for the patient's accounting.

    The recipient gets de-identified copies (deid.export) unless `deidentify` is False; sending
    originals, or adding `deid_options` that keep more than the Basic Profile, needs `reason`,
    which the audit event records. `clean_pixel` (or "clean_pixel" among `deid_options`) is
    stricter: the practice's pixel masks blank burned-in text in the recipient's copies. Refused
    (Forbidden, with the reason) when the patient's records may not be shared (access/policy.py
    sharing_refusal)."""
    require_sharing(access, case)
    deid_options = list(deid_options)
    stricter = deidentify and (clean_pixel or deid_export.CLEAN_PIXEL in deid_options)
    options, reason = _deid_choice(deidentify, deid_options, reason)
    if stricter:
        options.append(deid_export.CLEAN_PIXEL)
    if case.archived_at is not None:
        raise ValidationError("An archived case cannot be shared.")
    refusal = SHAREABLE_REFUSED.get(Status(case.status))
    if refusal:
        raise ValidationError(refusal)
    email = recipient_email.strip().lower()
    try:
        validate_email(email)
    except ValidationError:
        raise ValidationError("Enter the recipient's e-mail address.") from None
    if not isinstance(expires_in_days, int) or not 1 <= expires_in_days <= MAX_EXPIRY_DAYS:
        raise ValidationError(f"A link can last from 1 to {MAX_EXPIRY_DAYS} days.")
    if not isinstance(max_downloads, int) or not 1 <= max_downloads <= MAX_DOWNLOADS_LIMIT:
        raise ValidationError(f"Allow from 1 to {MAX_DOWNLOADS_LIMIT} downloads.")
    purpose = purpose.strip()
    if not purpose:
        raise ValidationError("Say why the files are shared (it goes into the patient's accounting of disclosures).")
    if len(purpose) > 500:
        raise ValidationError("Keep the purpose under 500 characters.")
    wanted = {str(a.pk) if isinstance(a, Attachment) else str(a) for a in attachments}
    by_id = {str(a.pk): a for a in shared_files_of_case(case)}
    chosen = [by_id[i] for i in sorted(wanted) if i in by_id]
    if not wanted:
        raise ValidationError("Choose at least one file to share.")
    if len(chosen) != len(wanted):
        raise ValidationError("Only files of this case can be shared.")
    raw_token, token_digest = new_secret()
    now = timezone.now()
    actor = access.actor if isinstance(access.actor, User) else None
    with transaction.atomic():
        link = ExternalLink.objects.create(
            case=case,
            recipient_email=email,
            created_by=actor,
            expires_at=now + timedelta(days=expires_in_days),
            max_downloads=max_downloads,
            token_digest=token_digest,
            deidentify=deidentify,
            deid_options=options,
            originals_reason=reason,
        )
        link.attachments.set(chosen)
        Disclosure.objects.create(
            practice=case.practice,
            patient_id=case.patient_id,
            case=case,
            link=link,
            recipient_email=email,
            files=[{"file": str(a.stored_object_id), "name": a.display_name} for a in chosen],
            disclosed_at=now,
            disclosed_by=actor,
            disclosed_by_label=getattr(access.actor, "email", "") or getattr(access.actor, "audit_label", ""),
            purpose=purpose,
        )
        _audit_practice(
            "share.link.created",
            access,
            link,
            files=[str(a.stored_object_id) for a in chosen],
            expires_at=link.expires_at.isoformat(),
            max_downloads=max_downloads,
            deidentified=deidentify,
            deid_options=options if deidentify else None,
            less_strict_reason=reason or None,
        )
        queue_mail(
            [email],
            "share_link",
            {
                "link": absolute_url(reverse("share_landing", args=[raw_token])),
                "expires_at": link.expires_at,
                "file_count": len(chosen),
                # Named, with the practice's own phone, so that a patient can tell this from
                # phishing and check with the practice (neither is PHI; no patient detail is).
                "organization": case.practice.name,
                "phone": case.practice.phone,
            },
        )
    return link


def _deid_choice(deidentify: bool, deid_options: Iterable[str], reason: str) -> tuple[list[str], str]:
    """The option keys to record and the reason (stripped), or the ValidationError that says why not."""
    try:
        options = deid_export.option_names(deid_export.options_from_names(deid_options))
    except ValueError as error:
        raise ValidationError(f"De-identification: {error}.") from None
    if not deidentify:
        options = []
    reason = reason.strip()
    if (options or not deidentify) and not reason:
        raise ValidationError(
            "Say why the recipient needs more than the de-identified files (it is recorded in the audit log)."
        )
    if len(reason) > 500:
        raise ValidationError("Keep the reason under 500 characters.")
    return options, reason if (options or not deidentify) else ""


def burned_in_suspects(attachments: Iterable[Attachment]) -> dict[str, str]:
    """Shareable DICOM files that may show the patient's name in their pixels, by what imaging
    ingest recorded (modality, SOP class): file id -> why. The preview reads Burned In Annotation
    itself; this is the warning the sharing form shows without opening any file."""
    from casebridge.imaging.models import Instance

    ids = [a.stored_object_id for a in attachments]
    out = {}
    for instance in Instance.objects.filter(stored_object_id__in=ids).select_related("series"):
        why = deid_export.burned_in_warning(
            {"Modality": instance.series.modality, "SOPClassUID": instance.sop_class_uid}
        )
        if why:
            out[str(instance.stored_object_id)] = why
    return out


def named_versions(attachments: Iterable[Attachment]) -> list[tuple[str, ObjectVersion]]:
    """The current version of each attachment under its download name (gone ones left out)."""
    entries = []
    for attachment in attachments:
        try:
            version = vault.get_version(attachment.stored_object)
        except vault.ObjectUnavailable:
            continue
        entries.append((attachment.download_name(version.version), version))
    return entries


def deid_plan(link: ExternalLink, attachments: list[Attachment]) -> deid_export.Plan:
    """What a de-identified download of `attachments` through `link` holds, by the link's options."""
    options = deid_export.options_from_names(link.deid_options)
    work = deid_export.plan(named_versions(attachments), options, deid_export.case_secret(link.case))
    if deid_export.CLEAN_PIXEL in link.deid_options:
        from casebridge.imaging.actions import masks_for_files

        work.masks = masks_for_files(link.case.practice, [v.stored_object_id for _, v in work.files])
    return work


def revoke_link(access: OrgAccess, link: ExternalLink) -> None:
    require_practice(access, link.case)
    if link.revoked_at is not None:
        return
    with transaction.atomic():
        link.revoked_at = timezone.now()
        link.revoked_by = access.actor if isinstance(access.actor, User) else None
        link.save(update_fields=["revoked_at", "revoked_by"])
        _audit_practice("share.link.revoked", access, link)


# --- the recipient side -------------------------------------------------------------------
def _audit_recipient(action: str, link: ExternalLink, outcome: str = Outcome.SUCCESS, **details: Any) -> None:
    record(
        action,
        actor=Recipient(link),
        organization=link.case.practice_id,
        target=link,
        patient_ref=str(link.case.patient_id),
        outcome=outcome,
        details={"link": str(link.pk), **details},
    )


def _take(key: str, rate: tuple[int, int]) -> bool:
    """Count one use against a fixed-window limit; False (and nothing counted) when it is spent."""
    limit, window = rate
    bucket = f"share:{key}:{int(timezone.now().timestamp()) // window}"
    used = cache.get(bucket, 0)
    if used >= limit:
        return False
    cache.set(bucket, used + 1, timeout=window)
    return True


def _code_digest(link: ExternalLink, code: str) -> str:
    # Keyed with the server secret: six digits alone could be reversed from a plain hash.
    return salted_hmac("casebridge.sharing.code", f"{link.pk}:{code}", algorithm="sha256").hexdigest()


def _locked(link: ExternalLink) -> ExternalLink:
    return ExternalLink.objects.select_for_update().select_related("case").get(pk=link.pk)


def refuse(link: ExternalLink, reason: str, during: str) -> None:
    """Record a visit to a dead link (the visitor only ever sees "no longer available")."""
    with transaction.atomic():
        _audit_recipient("share.link.refused", link, Outcome.DENIED, reason=reason, during=during)


def record_open(link: ExternalLink, *, verified: bool) -> None:
    reason = dead_reason(link)
    if reason:
        refuse(link, reason, "open")
        raise LinkUnavailable(reason)
    _audit_recipient("share.link.opened", link, verified=verified)


def record_listing(link: ExternalLink, files: list[Attachment]) -> None:
    _audit_recipient("share.files.listed", link, files=[str(a.stored_object_id) for a in files])


def send_code(link: ExternalLink, *, ip: str | None) -> None:
    """E-mail a fresh six-digit code to the link's address; any earlier code stops working."""
    with transaction.atomic():
        link = _locked(link)
        reason = dead_reason(link)
        if reason is None:
            per_link = _take(f"send:link:{link.pk}", CODE_SENDS_PER_LINK)
            if per_link and _take(f"send:ip:{ip}", CODE_SENDS_PER_IP):
                now = timezone.now()
                code = f"{secrets.randbelow(10**6):06d}"
                link.codes.filter(used_at__isnull=True, superseded_at__isnull=True).update(superseded_at=now)
                OneTimeCode.objects.create(link=link, code_digest=_code_digest(link, code), expires_at=now + CODE_TTL)
                _audit_recipient("share.code.sent", link)
                queue_mail(
                    [link.recipient_email],
                    "share_code",
                    {"code": code, "minutes": CODE_TTL.seconds // 60, "organization": link.case.practice.name},
                )
                return
            _audit_recipient("share.code.throttled", link, Outcome.DENIED, scope="link" if not per_link else "ip")
        else:
            _audit_recipient("share.link.refused", link, Outcome.DENIED, reason=reason, during="send_code")
    if reason:
        raise LinkUnavailable(reason)
    raise Throttled


def verify_code(link: ExternalLink, code: str, *, ip: str | None) -> None:
    """Check a code: single use, ten minutes, and the link locks after five wrong ones."""
    code = "".join(ch for ch in code if ch.isdigit())[:6]
    rejected: CodeRejected | None = None
    with transaction.atomic():
        link = _locked(link)
        reason = dead_reason(link)
        if reason is not None:
            _audit_recipient("share.link.refused", link, Outcome.DENIED, reason=reason, during="verify_code")
        elif not _take(f"check:ip:{ip}", CODE_CHECKS_PER_IP):
            _audit_recipient("share.code.throttled", link, Outcome.DENIED, scope="ip_checks")
        else:
            rejected = _check(link, code)
            if rejected is None:
                return
    if reason is not None:
        raise LinkUnavailable(reason)
    if rejected is None:
        raise Throttled
    if rejected.reason == "locked":
        raise LinkUnavailable("locked")
    raise rejected


def _check(link: ExternalLink, code: str) -> CodeRejected | None:
    now = timezone.now()
    candidate = _code_digest(link, code)
    current = link.codes.filter(superseded_at__isnull=True).order_by("-created_at").first()
    if current is not None and current.used_at is None and constant_time_compare(candidate, current.code_digest):
        if current.expires_at > now:
            current.used_at = now
            current.attempts += 1
            current.save(update_fields=["used_at", "attempts"])
            _audit_recipient("share.code.verified", link)
            return None
        failure = CodeRejected("expired", "That code has expired. Ask for a new one.")
    elif current is not None and current.used_at is not None and constant_time_compare(candidate, current.code_digest):
        failure = CodeRejected("replayed", "That code was already used. Ask for a new one.")
    elif current is None:
        failure = CodeRejected("no_code", "Ask for a code first.")
    else:
        failure = CodeRejected("wrong", "That code is not right. Check the e-mail and try again.")
    if current is not None:
        current.attempts += 1
        current.save(update_fields=["attempts"])
    link.failed_attempts += 1
    fields = ["failed_attempts"]
    if link.failed_attempts >= MAX_FAILED_CODES:
        link.locked_at = now
        fields.append("locked_at")
    link.save(update_fields=fields)
    _audit_recipient(
        "share.code.failed", link, Outcome.FAILURE, reason=failure.reason, failed_attempts=link.failed_attempts
    )
    if link.locked_at is not None:
        _audit_recipient("share.link.locked", link, Outcome.DENIED, failed_attempts=link.failed_attempts)
        return CodeRejected("locked", "")
    return failure


def count_archive_download(link: ExternalLink, attachments: list[Attachment], **details: Any) -> None:
    """Take one download from the link's allowance for an archive of every shared file (one
    request, one download), recording which files it held; refused like a single download."""
    _take_download(link, "share.files.downloaded", files=[str(a.stored_object_id) for a in attachments], **details)


def count_download(
    link: ExternalLink, attachment: Attachment, byte_range: tuple[int, int] | None, **details: Any
) -> None:
    """Take one download from the link's allowance before a byte is sent; every request that
    sends content counts, ranged resumes included, so the allowance is a hard ceiling."""
    _take_download(
        link,
        "share.file.downloaded",
        file=str(attachment.stored_object_id),
        range=list(byte_range) if byte_range else None,
        **details,
    )


def _take_download(link: ExternalLink, action: str, **details: Any) -> None:
    """One download off the allowance under the link's row lock, audited as `action`; a dead link
    (expired, revoked, used up, its case closed) is refused and audited instead."""
    with transaction.atomic():
        locked = _locked(link)
        reason = dead_reason(locked)
        if reason is None:
            locked.downloads_used += 1
            locked.save(update_fields=["downloads_used"])
            _audit_recipient(
                action, locked, **details, download=locked.downloads_used, max_downloads=locked.max_downloads
            )
            link.downloads_used = locked.downloads_used
            return
        _audit_recipient("share.link.refused", locked, Outcome.DENIED, reason=reason, during="download")
    raise LinkUnavailable(reason)
