"""BAA generator pages: the agreements of the organization's connections, drafting one, editing
and finalizing it (compliance managers), signing it after confirming identity (whoever records
agreements: owners, administrators, lab managers), and its PDF or Word copy."""

from __future__ import annotations

import datetime
import uuid

from allauth.account.decorators import reauthentication_required
from django.contrib import messages
from django.core.exceptions import ValidationError
from django.db.models import Q, QuerySet
from django.http import Http404, HttpRequest, HttpResponse
from django.http.response import HttpResponseBase
from django.shortcuts import redirect, render

from casebridge.access.guards import org_permission
from casebridge.access.policy import OrgAccess, scoped_get
from casebridge.access.requests import org_access_of
from casebridge.access.roles import Perm
from casebridge.audit.api import record
from casebridge.compliance import baa, vendors
from casebridge.compliance.models import BaaDocument, Vendor
from casebridge.core.params import uuid_or_none
from casebridge.kernel.filetypes import FILE_TYPES_BY_NAME
from casebridge.orgs.models import Connection, ConnectionStatus
from casebridge.vault import api as vault
from casebridge.vault.http import ByteRange, version_response


def _documents(access: OrgAccess) -> QuerySet[BaaDocument]:
    org = access.organization
    return BaaDocument.objects.filter(Q(covered_entity=org) | Q(business_associate=org)).select_related(
        "connection", "vendor", "covered_entity", "business_associate"
    )


@org_permission(Perm.CONNECTIONS_VIEW)
def baa_list(request: HttpRequest) -> HttpResponse:
    """The organization's agreements; a compliance manager drafts one for a connection."""
    access = org_access_of(request)
    org = access.organization
    connections = Connection.objects.filter(Q(requester=org) | Q(recipient=org)).exclude(status=ConnectionStatus.ENDED)
    if request.method == "POST":
        try:
            access.require(Perm.COMPLIANCE_MANAGE)
            if request.POST.get("vendor"):
                own = Vendor.objects.filter(organization=org)
                doc = baa.draft_for_vendor(access, scoped_get(own, pk=uuid_or_none(request.POST["vendor"])))
            else:
                connection = scoped_get(connections, pk=uuid_or_none(request.POST.get("connection", "")))
                doc = baa.draft(access, connection)
        except ValidationError as exc:
            messages.error(request, " ".join(exc.messages))
            return redirect("baa_list", org.slug)
        messages.success(request, "Agreement drafted from both organizations' details: review each section.")
        return redirect("baa_detail", org.slug, doc.pk)
    return render(
        request,
        "compliance/baas.html",
        {
            "documents": _documents(access),
            "connections": [(c, c.other(org)) for c in connections.select_related("requester", "recipient")],
            "vendors": Vendor.objects.filter(organization=org) if access.has(Perm.COMPLIANCE_MANAGE) else [],
            "can_draft": access.has(Perm.COMPLIANCE_MANAGE),
            "nav": "vendors",
        },
    )


@org_permission(Perm.CONNECTIONS_VIEW)
def baa_detail(request: HttpRequest, document_id: uuid.UUID) -> HttpResponse:
    access = org_access_of(request)
    doc = scoped_get(_documents(access), pk=document_id)
    errors: dict[str, list[str]] = {}
    sections = doc.sections
    report_days: object = doc.report_days
    expires = doc.expires_on.isoformat() if doc.expires_on else ""
    if request.method == "POST":
        keys = [p.key for p in baa.PROVISIONS] + [baa.ADDITIONAL]
        sections = {k: request.POST.get(k, "") for k in keys}
        report_days = request.POST.get("report_days", "")
        expires = request.POST.get("expires_on", "")
        finalize = request.POST.get("operation") == "finalize"
        try:
            expires_on = datetime.date.fromisoformat(expires) if expires else None
        except ValueError:
            errors = {"expires_on": ["Enter the end date as a date (YYYY-MM-DD)."]}
        else:
            try:
                baa.save(access, doc, sections, report_days=report_days, expires_on=expires_on, finalize=finalize)
            except ValidationError as exc:
                errors = exc.message_dict if hasattr(exc, "error_dict") else {"__all__": exc.messages}
            else:
                messages.success(
                    request, "Agreement made final: each side can now sign." if finalize else "Draft saved."
                )
                return redirect("baa_detail", access.organization.slug, doc.pk)
    rows = [{"provision": p, "text": sections.get(p.key, ""), "errors": errors.get(p.key, [])} for p in baa.PROVISIONS]
    signatures = {s.party: s for s in doc.signatures.select_related("user")}
    try:
        mine = baa.party_of(access, doc)
    except ValidationError:
        mine = ""
    return render(
        request,
        "compliance/baa.html",
        {
            "doc": doc,
            "rows": rows,
            "additional": sections.get(baa.ADDITIONAL, ""),
            "additional_errors": errors.get(baa.ADDITIONAL, []),
            "report_days": report_days,
            "report_days_errors": errors.get("report_days", []),
            "expires_on": expires,
            "expires_errors": errors.get("expires_on", []),
            "general_errors": errors.get("__all__", []),
            "open_problems": baa.problems(sections, doc.report_days),
            "can_edit": access.has(Perm.COMPLIANCE_MANAGE) and doc.finalized_at is None,
            "can_sign": access.has(Perm.CONNECTIONS_MANAGE)
            and doc.finalized_at is not None
            and mine
            and mine not in signatures,
            "parties": [
                (label, org, signatures.get(key))
                for key, label, org in (
                    (baa.COVERED_ENTITY, "Covered entity", doc.covered_entity.name),
                    (baa.BUSINESS_ASSOCIATE, "Business associate", doc.business_associate_name),
                )
            ],
            "nav": "vendors",
        },
        status=400 if errors else 200,
    )


@org_permission(Perm.CONNECTIONS_MANAGE)
@reauthentication_required
def baa_sign(request: HttpRequest, document_id: uuid.UUID) -> HttpResponse:
    """Sign for the organization: only after confirming one's identity again (password or second
    factor, within the last few minutes), like every other sensitive action."""
    access = org_access_of(request)
    doc = scoped_get(_documents(access), pk=document_id)
    errors: dict[str, list[str]] = {}
    if request.method == "POST":
        try:
            baa.sign(access, doc, name=request.POST.get("name", ""), title=request.POST.get("title", ""))
        except ValidationError as exc:
            errors = exc.message_dict if hasattr(exc, "error_dict") else {"__all__": exc.messages}
        else:
            doc.refresh_from_db()
            if doc.vendor_id:
                said = "Signed: the PDF is kept in the vault; send it to the vendor and upload its countersigned copy."
            elif doc.signed_at:
                said = "Signed by both sides: the signed PDF is kept in the vault and the connection rests on this BAA."
            else:
                said = "Signed. The other side signs next."
            messages.success(request, said)
            return redirect("baa_detail", access.organization.slug, doc.pk)
    return render(
        request,
        "compliance/baa_sign.html",
        {"doc": doc, "errors": errors, "posted": request.POST, "nav": "vendors"},
        status=400 if errors else 200,
    )


@org_permission(Perm.CONNECTIONS_VIEW)
def baa_file(request: HttpRequest, document_id: uuid.UUID, kind: str) -> HttpResponseBase:
    """The agreement as PDF or Word; once signed by both, the PDF is the signed one from the vault."""
    access = org_access_of(request)
    doc = scoped_get(_documents(access), pk=document_id)
    if kind not in ("pdf", "docx"):
        raise Http404("no such format")
    name = f"baa-{str(doc.pk)[:8]}"
    if kind == "pdf" and doc.signed_pdf is not None:
        stored = doc.signed_pdf
        try:
            version = vault.get_version(stored)
        except vault.ObjectUnavailable:
            return HttpResponse("The signed agreement is no longer available.", status=404, content_type="text/plain")

        def audit(byte_range: ByteRange) -> None:
            baa.printed(access, doc, "signed pdf")

        return version_response(
            request, stored, version, before_body=audit, refuse=_refused, filename=f"{name}-signed.pdf"
        )
    if kind == "pdf":
        content, content_type = baa.pdf_bytes(doc), "application/pdf"
    else:
        content = baa.docx_bytes(doc)
        content_type = "application/vnd.openxmlformats-officedocument.wordprocessingml.document"
    baa.printed(access, doc, kind)
    response = HttpResponse(content, content_type=content_type)
    response["Content-Disposition"] = f'attachment; filename="{name}.{kind}"'
    response["Cache-Control"] = "no-store"
    return response


def _refused(status: int, title: str, detail: str) -> HttpResponse:
    return HttpResponse(detail, status=status, content_type="text/plain")


@org_permission(Perm.COMPLIANCE_MANAGE)
def vendor_detail(request: HttpRequest, vendor_id: uuid.UUID) -> HttpResponse:
    """One vendor: its signed BAA (upload, stored in the vault) and its annual reassessment."""
    access = org_access_of(request)
    vendor = scoped_get(Vendor.objects.filter(organization=access.organization), pk=vendor_id)
    errors: dict[str, list[str]] = {}
    if request.method == "POST":
        try:
            if request.POST.get("operation") == "document":
                upload = request.FILES.get("document")
                signed = request.POST.get("baa_signed_on", "")
                try:
                    signed_on = datetime.date.fromisoformat(signed) if signed else None
                except ValueError:
                    raise ValidationError({"baa_signed_on": "Enter the signing date as a date."}) from None
                vendors.upload_baa(
                    access,
                    vendor,
                    chunks=upload.chunks() if upload is not None else [],
                    length=(upload.size or 0) if upload is not None else 0,
                    signed_on=signed_on,
                )
                messages.success(request, "Signed BAA stored encrypted; the vendor's BAA is now signed.")
            else:
                answers = {key: request.POST.get(key, "") for key, *_ in vendors.QUESTIONS}
                done = vendors.reassess(access, vendor, answers, request.POST.get("breach_notes", ""))
                messages.success(
                    request,
                    "Reassessment recorded: satisfactory." if not done.gaps else "Reassessment recorded: follow up.",
                )
        except ValidationError as exc:
            errors = exc.message_dict if hasattr(exc, "error_dict") else {"__all__": exc.messages}
        else:
            return redirect("vendor_detail", access.organization.slug, vendor.pk)
    return render(
        request,
        "compliance/vendor.html",
        {
            "vendor": vendor,
            "questions": vendors.QUESTIONS,
            "reassessments": vendor.reassessments.select_related("assessed_by")[:10],
            "errors": errors,
            "posted": request.POST,
            "nav": "vendors",
        },
        status=400 if errors else 200,
    )


@org_permission(Perm.COMPLIANCE_MANAGE)
def vendor_baa_document(request: HttpRequest, vendor_id: uuid.UUID) -> HttpResponseBase:
    """The vendor's signed BAA from the vault; each download audited."""
    access = org_access_of(request)
    vendor = scoped_get(
        Vendor.objects.filter(organization=access.organization, baa_document__isnull=False), pk=vendor_id
    )
    stored = vendor.baa_document
    assert stored is not None
    try:
        version = vault.get_version(stored)
    except vault.ObjectUnavailable as exc:
        raise Http404("gone") from exc

    def audit(byte_range: ByteRange) -> None:
        record(
            "compliance.baa.document_read",
            actor=access.actor,
            organization=access.organization,
            target=stored,
            details={"vendor": str(vendor.pk)},
        )

    name = f"vendor-baa-{str(vendor.pk)[:8]}.{FILE_TYPES_BY_NAME[stored.file_type].extension}"
    return version_response(request, stored, version, before_body=audit, refuse=_refused, filename=name)
