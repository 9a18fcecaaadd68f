"""The recipient's pages behind an external link (public: the link token is the only key until
the one-time code is verified). Nothing about the case or patient is shown before that, and a
dead link gets the same 404 page whatever killed it."""

from __future__ import annotations

import time
from typing import Any
from uuid import UUID

from django.contrib import messages
from django.http import HttpRequest, HttpResponse
from django.http.response import HttpResponseBase
from django.shortcuts import redirect, render
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from casebridge.access.guards import public
from casebridge.core.context import client_ip
from casebridge.deid import export as deid_export
from casebridge.sharing import actions
from casebridge.sharing.models import ExternalLink
from casebridge.vault import api as vault
from casebridge.vault import zipstream
from casebridge.vault.http import ByteRange, version_response

# Session entry: {link id: epoch seconds until which the code check holds}, per browser session.
SESSION_VERIFIED = "cb_share_verified"


def _gone(request: HttpRequest) -> HttpResponse:
    return render(request, "sharing/gone.html", status=404)


def _is_verified(request: HttpRequest, link: ExternalLink) -> bool:
    until = request.session.get(SESSION_VERIFIED, {}).get(str(link.pk))
    return until is not None and time.time() < until


def _mark_verified(request: HttpRequest, link: ExternalLink) -> None:
    # A fresh session key at the moment the session gains access (no session fixation).
    request.session.cycle_key()
    until = min(time.time() + actions.VERIFICATION_TTL.total_seconds(), link.expires_at.timestamp())
    verified = {k: v for k, v in request.session.get(SESSION_VERIFIED, {}).items() if v > time.time()}
    verified[str(link.pk)] = until
    request.session[SESSION_VERIFIED] = verified


def _landing(request: HttpRequest, link: ExternalLink, token: str, status: int = 200, **extra: Any) -> HttpResponse:
    return render(
        request,
        "sharing/landing.html",
        {"token": token, "masked_email": link.masked_email, **extra},
        status=status,
    )


def _live_link(token: str, during: str) -> ExternalLink | None:
    link = actions.link_for_token(token)
    if link is None:
        return None
    reason = actions.dead_reason(link)
    if reason is not None:
        actions.refuse(link, reason, during)
        return None
    return link


@public
@require_GET
def landing(request: HttpRequest, token: str) -> HttpResponse:
    link = actions.link_for_token(token)
    if link is None:
        return _gone(request)
    verified = _is_verified(request, link)
    try:
        actions.record_open(link, verified=verified)
    except actions.LinkUnavailable:
        return _gone(request)
    if verified:
        return redirect("share_files", token=token)
    return _landing(request, link, token)


@public
@require_POST
def send_code(request: HttpRequest, token: str) -> HttpResponse:
    link = actions.link_for_token(token)
    if link is None:
        return _gone(request)
    try:
        actions.send_code(link, ip=client_ip(request))
    except actions.LinkUnavailable:
        return _gone(request)
    except actions.Throttled:
        return _landing(request, link, token, 429, error="Too many codes were asked for. Wait a while and try again.")
    messages.success(request, f"We sent a code to {link.masked_email}. It works for 10 minutes.")
    return redirect("share_landing", token=token)


@public
@require_POST
def verify(request: HttpRequest, token: str) -> HttpResponse:
    link = actions.link_for_token(token)
    if link is None:
        return _gone(request)
    try:
        actions.verify_code(link, request.POST.get("code", ""), ip=client_ip(request))
    except actions.LinkUnavailable:
        return _gone(request)
    except actions.Throttled:
        return _landing(request, link, token, 429, error="Too many attempts. Wait a while and try again.")
    except actions.CodeRejected as exc:
        return _landing(request, link, token, 400, error=exc.message)
    _mark_verified(request, link)
    return redirect("share_files", token=token)


@public
@require_GET
def files(request: HttpRequest, token: str) -> HttpResponse:
    link = _live_link(token, "list")
    if link is None:
        return _gone(request)
    if not _is_verified(request, link):
        return redirect("share_landing", token=token)
    shared = actions.shared_files(link)
    actions.record_listing(link, shared)
    return render(
        request,
        "sharing/files.html",
        {
            "token": token,
            "files": [(a, a.display_name, actions.current_size(a)) for a in shared],
            "link": link,
            "downloads_left": link.max_downloads - link.downloads_used,
        },
    )


def _plain(status: int, title: str, detail: str) -> HttpResponseBase:
    return HttpResponse(f"{title}: {detail}", status=status, content_type="text/plain; charset=utf-8")


@public
@require_http_methods(["GET", "HEAD"])
def download(request: HttpRequest, token: str, file_id: UUID) -> HttpResponseBase:
    link = _live_link(token, "download")
    if link is None:
        return _gone(request)
    if not _is_verified(request, link):
        actions.refuse(link, "not_verified", "download")
        return redirect("share_landing", token=token)
    attachment = next((a for a in actions.shared_files(link) if a.stored_object_id == file_id), None)
    if attachment is None:
        return _gone(request)
    if link.deidentify:
        return _deidentified_file(request, link, attachment)
    try:
        version = vault.get_version(attachment.stored_object)
    except vault.ObjectUnavailable:
        return _gone(request)

    def count(byte_range: ByteRange) -> None:
        actions.count_download(link, attachment, byte_range)

    try:
        return version_response(
            request,
            attachment.stored_object,
            version,
            before_body=count,
            refuse=_plain,
            filename=attachment.download_name(version.version),
        )
    except actions.LinkUnavailable:
        return _gone(request)


@public
@require_http_methods(["GET"])
def download_all(request: HttpRequest, token: str) -> HttpResponseBase:
    """Every file the link shares in one ZIP, decrypted as it streams; one download of the
    allowance, whatever the number of files."""
    link = _live_link(token, "download")
    if link is None:
        return _gone(request)
    if not _is_verified(request, link):
        actions.refuse(link, "not_verified", "download")
        return redirect("share_landing", token=token)
    if link.deidentify:
        return _deidentified_archive(request, link)
    entries, included = [], []
    for attachment in actions.shared_files(link):
        try:
            version = vault.get_version(attachment.stored_object)
        except vault.ObjectUnavailable:
            continue
        entries.append((attachment.download_name(version.version), version))
        included.append(attachment)
    if not entries:
        return _gone(request)
    try:
        actions.count_archive_download(link, included)
    except actions.LinkUnavailable:
        return _gone(request)
    return zipstream.archive_response(entries, f"{included[0].case.number}.zip")


def _deidentified_archive(request: HttpRequest, link: ExternalLink) -> HttpResponseBase:
    """The shared files de-identified by the link's options as the ZIP streams, with the report;
    one download of the allowance, audited with the files and the options."""
    shared = actions.shared_files(link)
    work = actions.deid_plan(link, shared)
    if not work.files and not work.left_out:
        return _gone(request)
    details = work.audit_details()
    included = [a for a in shared if str(a.stored_object_id) in set(details["files"])]
    try:
        actions.count_archive_download(
            link, included, deidentified=True, options=details["options"], left_out=details["left_out"]
        )
    except actions.LinkUnavailable:
        return _gone(request)
    return deid_export.archive_response(work, f"{link.case.number}_deidentified.zip")


def _deidentified_file(request: HttpRequest, link: ExternalLink, attachment: Any) -> HttpResponseBase:
    """One shared file de-identified as it streams (whole: a de-identified copy has no stable
    byte offsets to resume from), or a 409 naming why it cannot be de-identified safely."""
    work = actions.deid_plan(link, [attachment])
    if not work.files:
        if work.left_out:
            reason = work.left_out[0]["reason"]
            return _plain(409, "Not available", f"this file cannot be de-identified safely ({reason})")
        return _gone(request)
    name = work.files[0][0]
    if request.method == "HEAD":  # nothing sent, nothing counted (as for originals)
        head = HttpResponse(content_type="application/octet-stream")
        head["Content-Disposition"] = f'attachment; filename="{name}"'
        head["Cache-Control"] = "no-store"
        return head
    try:
        content = deid_export.single_file(work)
    except deid_export.NotDeidentifiable as refusal:
        return _plain(409, "Not available", f"this file cannot be de-identified safely ({refusal})")
    try:
        actions.count_download(link, attachment, None, deidentified=True, options=work.audit_details()["options"])
    except actions.LinkUnavailable:
        return _gone(request)
    return deid_export.file_response(content, name)
