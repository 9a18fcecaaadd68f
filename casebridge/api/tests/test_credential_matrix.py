"""Every state-changing operation against every kind of wrong credential.

Each row of OPERATIONS is one operation a person or an integration can perform (REST API, tus,
the transfer server's lease, the organization's web pages). Each is tried

- with the right credential, which must succeed: it proves the request itself is well formed, so
  a refusal below comes from the credential and nothing else;
- and with each kind of wrong one: nobody, a token whose scopes do not reach it, a token made for
  another organization the same person belongs to, a member whose membership was deactivated and
  who signed in again, the lab after the practice revoked its access, a member of another
  organization, and a perfectly good token where only a person signed in with MFA may act. Every
  wrong one must be refused (401/403/404, or sent to sign in) and change nothing.

The coverage tests at the end fail when a URL or an OpenAPI operation has no row here (or no
stated reason for having none): a new operation cannot ship untested against credentials.
"""

from __future__ import annotations

import base64
import io
import json
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date
from typing import Any, cast

import pydicom
import pytest
from django.apps import apps
from django.conf import settings
from django.test import Client
from django.urls import URLPattern, URLResolver, get_resolver
from django.utils import timezone

from casebridge.access.policy import resolve
from casebridge.accounts.actions import create_api_token
from casebridge.accounts.models import ServiceAccount, User
from casebridge.api.tests.conftest import World, draft_body, ready_case
from casebridge.audit.alerts import DEFAULT_RULES
from casebridge.audit.models import Alert, AlertKind
from casebridge.cases.models import Patient
from casebridge.compliance import baa
from casebridge.compliance.models import (
    Decision,
    Incident,
    RequestKind,
    RiskAssessment,
    SubjectRequest,
    TrainingModule,
    Vendor,
)
from casebridge.core.testing import add_member, make_org, make_user, signed_in_client
from casebridge.imaging.synthetic import dicom_image
from casebridge.kernel.tickets import internal_key
from casebridge.orgs import actions as org_actions
from casebridge.orgs.models import (
    AgreementBasis,
    Connection,
    EmergencyAccess,
    Invitation,
    Membership,
    Organization,
    OrgKind,
)
from casebridge.vault import api as vault
from casebridge.vault.tests.samples import binary_stl

pytestmark = pytest.mark.django_db

ALL_SCOPES = ["org:read", "audit:read", "cases:read", "cases:write"]
READ_SCOPES = ["org:read", "audit:read", "cases:read"]
TUS = {"HTTP_TUS_RESUMABLE": "1.0.0"}
UPLOAD_BYTES = binary_stl(4000)
# STOW-RS: one DICOM instance in a multipart/related body, and the study it belongs to.
STOW_INSTANCE = dicom_image("credential matrix")
STOW_STUDY = str(pydicom.dcmread(io.BytesIO(STOW_INSTANCE), stop_before_pixels=True).StudyInstanceUID)
STOW_BOUNDARY = "matrix"
STOW_BODY = (
    f"--{STOW_BOUNDARY}\r\nContent-Type: application/dicom\r\n\r\n".encode()
    + STOW_INSTANCE
    + f"\r\n--{STOW_BOUNDARY}--".encode()
)


# The alert rules form as the page posts it: every rule at its default.
ALERT_RULES_FORM = {
    f"{kind}-{name}": str(getattr(setting, name))
    for kind, setting in DEFAULT_RULES.items()
    for name in ("threshold", "window_minutes", "start_hour", "end_hour")
}


# --- the world each row starts from -----------------------------------------------------------
@dataclass
class Ctx:
    world: World
    number: str = ""
    attached_file: str = ""  # a file of the case
    own_file: str = ""  # a finished upload of the practice's owner, not attached
    upload: str = ""  # an upload of the owner in progress
    link: str = ""  # an external link of the case
    ids: dict[str, str] = field(default_factory=dict)

    @property
    def practice(self) -> str:
        return self.world.practice.slug

    @property
    def lab(self) -> str:
        return self.world.lab.slug

    @property
    def center(self) -> str:
        return CENTER_SLUG


# The case's life, step by step: (stage reached, side acting, operation, body).
LIFE: list[tuple[str, str, str, dict[str, Any]]] = [
    ("submitted", "practice", "submit", {}),
    ("received", "lab", "receive", {}),
    ("on_hold", "lab", "hold", {"question": "A2 or A3?"}),
    ("answered", "practice", "answer", {"answer": "A2, please."}),
    ("in_design", "lab", "status", {"status": "in_design"}),
    ("design_attached", "lab", "attachments", {"kind": "design"}),
    ("design_requested", "lab", "design-approval", {"note": "v1"}),
    ("design_approved", "practice", "design-decision", {"approve": True}),
    ("in_production", "lab", "status", {"status": "in_production"}),
    ("quality_check", "lab", "status", {"status": "quality_check"}),
    ("shipped", "lab", "status", {"status": "shipped", "tracking_number": "1Z999"}),
    ("delivered", "lab", "status", {"status": "delivered"}),
    ("completed", "lab", "complete", {}),
]


# An imaging center connected to the practice, and the stages of an imaging order on a draft.
CENTER_SLUG = "matrix-imaging"
IMAGING_STAGES = ("imaging_sent", "imaging_received", "imaging_studied")
REPORT_PDF = b"%PDF-1.4\n1 0 obj<<>>endobj\ntrailer<<>>\n%%EOF\n"
ORDER_BODY = {"center": CENTER_SLUG, "modality": "cbct", "region": "mandible", "clinical_question": "bone at 36"}


def _center(world: World) -> tuple[User, Organization]:
    """The imaging center and its radiographer, made and connected under a BAA on first use."""
    center = Organization.objects.filter(slug=CENTER_SLUG).first()
    if center is None:
        center = make_org("Matrix Imaging", OrgKind.IMAGING, slug=CENTER_SLUG)
        add_member(center, make_user("radiographer@matrix-imaging.test"), "staff")  # a technologist
        center_owner = make_user("owner@matrix-imaging.test")
        add_member(center, center_owner, "owner")
        owner = resolve(world.personas.members["owner"], world.practice)
        assert owner is not None
        connection = org_actions.request_connection(
            owner, other_slug=CENTER_SLUG, basis=AgreementBasis.BAA, baa_signed_on=timezone.now().date()
        )
        accepting = resolve(center_owner, center)
        assert accepting is not None
        org_actions.accept_connection(accepting, connection)
    return User.objects.get(email="radiographer@matrix-imaging.test"), center


def _order_at(world: World, ctx: Ctx, stage: str) -> None:
    user, center = _center(world)
    ordered = world.api("owner").post(f"cases/{ctx.number}/imaging-orders", ORDER_BODY)
    assert ordered.status_code == 201, ordered.content
    ctx.ids["order"] = ordered.json()["id"]
    if stage == "imaging_sent":
        return
    api = _token_client(world, user, center, ALL_SCOPES)
    confirmed = api.post(f"/api/v1/cases/{ctx.number}/imaging-orders/{ctx.ids['order']}/receive")
    assert confirmed.status_code == 200, confirmed.content
    if stage == "imaging_studied":  # the center added its report: it may deliver
        report = vault.put_stream(organization=center, actor=user, chunks=[REPORT_PDF], length=len(REPORT_PDF))
        added = api.post(
            f"/api/v1/cases/{ctx.number}/attachments",
            json.dumps({"file_id": str(report.stored_object.pk), "kind": "report"}),
            content_type="application/json",
        )
        assert added.status_code == 201, added.content


def _world_at(world: World, stage: str | None) -> Ctx:
    ctx = Ctx(world)
    owner = world.api("owner")
    ctx.own_file = world.upload("owner")
    created = Client(HTTP_AUTHORIZATION=f"Bearer {world.token('owner', ALL_SCOPES)}", **TUS).post(
        "/api/v1/uploads/", HTTP_UPLOAD_LENGTH=str(len(UPLOAD_BYTES))
    )
    assert created.status_code == 201, created.content
    ctx.upload = created["Location"].rstrip("/").rsplit("/", 1)[1]
    if stage is None:
        return ctx
    ctx.number = ready_case(world)  # by a clinician, with their uploads
    ctx.attached_file = owner.get(f"cases/{ctx.number}/attachments").json()[0]["file_id"]
    lab = world.api("technician")
    if stage in IMAGING_STAGES:
        _order_at(world, ctx, stage)
    for reached, side, operation, body in LIFE:
        if stage == "draft" or stage in IMAGING_STAGES:
            break
        api = owner if side == "practice" else lab
        if operation == "attachments":
            body = {**body, "file_id": world.upload("technician")}
        response = api.post(f"cases/{ctx.number}/{operation}", body)
        assert response.status_code in (200, 201), (reached, response.content)
        if reached == "submitted":
            link = owner.post(
                f"cases/{ctx.number}/links",
                {"files": [ctx.attached_file], "recipient_email": "dr.who@referral.test", "purpose": "second opinion"},
            )
            assert link.status_code == 201, link.content
            ctx.link = link.json()["id"]
        if reached == stage:
            break
    return ctx


# --- operations -----------------------------------------------------------------------------
@dataclass
class Op:
    """One operation: where it is, what the right credential sends, and what success is."""

    name: str  # the URL pattern's name
    method: str
    path: Callable[[Ctx], str]
    stage: str | None = None  # the case's stage before the request (None: no case needed)
    body: Callable[[Ctx], Any] = lambda ctx: {}
    ok: tuple[int, ...] = (200,)
    side: str = "practice"  # whose person acts: the practice's owner or the lab's technician
    session_only: bool = False  # only a person signed in with MFA may do it: tokens are refused
    kind: str = "api"  # api (JSON), tus, lease, web (form)
    headers: Callable[[Ctx], dict[str, str]] = lambda ctx: {}
    # Creates something new in the caller's own organization and touches nothing existing: a
    # credential of another organization rightly creates it there, so only the kinds that have no
    # organization to act for apply.
    creates: bool = False

    @property
    def id(self) -> str:
        return f"{self.name}:{self.method}:{self.stage or '-'}"


def _case(suffix: str = "") -> Callable[[Ctx], str]:
    return lambda ctx: f"/api/v1/cases/{ctx.number}{suffix}"


def _org(suffix: str, side: str = "practice") -> Callable[[Ctx], str]:
    slug: Callable[[Ctx], str] = {
        "practice": lambda ctx: ctx.practice,
        "lab": lambda ctx: ctx.lab,
        "imaging": lambda ctx: ctx.center,
    }[side]
    return lambda ctx: f"/o/{slug(ctx)}/{suffix.format(ctx=ctx)}"


def _order(suffix: str) -> Callable[[Ctx], str]:
    return lambda ctx: f"/api/v1/cases/{ctx.number}/imaging-orders/{ctx.ids['order']}/{suffix}"


def _stow_headers(ctx: Ctx) -> dict[str, str]:
    return {"CONTENT_TYPE": f'multipart/related; type="application/dicom"; boundary={STOW_BOUNDARY}'}


def _meta(**values: str) -> str:
    return ",".join(f"{k} {base64.b64encode(v.encode()).decode()}" for k, v in values.items())


def _patch_headers(ctx: Ctx) -> dict[str, str]:
    return {"HTTP_UPLOAD_OFFSET": "0", "CONTENT_TYPE": "application/offset+octet-stream"}


def _lease_headers(ctx: Ctx) -> dict[str, str]:
    return {
        "HTTP_CASEBRIDGE_TRANSFER_KEY": internal_key(settings.SECRET_KEY).hex(),
        "HTTP_CASEBRIDGE_BODY_TYPE": "application/offset+octet-stream",
        "HTTP_CASEBRIDGE_BODY_LENGTH": str(len(UPLOAD_BYTES)),
        "HTTP_UPLOAD_OFFSET": "0",
    }


OPERATIONS: list[Op] = [
    # cases, REST API
    Op(
        "create_case",
        "POST",
        lambda ctx: "/api/v1/cases",
        body=lambda ctx: draft_body(ctx.world),
        ok=(201,),
        creates=True,
    ),
    Op("update_case", "PATCH", _case(), "draft", body=lambda ctx: {"notes": "Light contacts"}),
    Op("submit_case", "POST", _case("/submit"), "draft"),
    Op("receive_case", "POST", _case("/receive"), "submitted", side="lab"),
    Op("change_status", "POST", _case("/status"), "received", body=lambda ctx: {"status": "in_design"}, side="lab"),
    Op("request_design_approval", "POST", _case("/design-approval"), "design_attached", side="lab"),
    Op("decide_design", "POST", _case("/design-decision"), "design_requested", body=lambda ctx: {"approve": True}),
    Op("hold_case", "POST", _case("/hold"), "received", body=lambda ctx: {"question": "Which shade?"}, side="lab"),
    Op("answer_hold", "POST", _case("/answer"), "on_hold", body=lambda ctx: {"answer": "A2."}),
    Op("complete_case", "POST", _case("/complete"), "delivered", side="lab"),
    Op("archive_case", "POST", _case("/archive"), "completed"),
    Op("revoke_lab_access", "POST", _case("/revoke-lab-access"), "submitted"),
    Op("cancel_case", "POST", _case("/cancel"), "submitted", body=lambda ctx: {"reason": "the patient moved away"}),
    Op("remake_case", "POST", _case("/remake"), "completed", body=lambda ctx: {"reason": "open margin"}, ok=(201,)),
    Op(
        "add_attachment",
        "POST",
        _case("/attachments"),
        "draft",
        body=lambda ctx: {"file_id": ctx.own_file, "kind": "scan", "label": "upper"},
        ok=(201,),
    ),
    Op("post_message", "POST", _case("/messages"), "submitted", body=lambda ctx: {"body": "hello"}, ok=(201,)),
    Op(
        "create_link",
        "POST",
        _case("/links"),
        "submitted",
        body=lambda ctx: {"files": [ctx.attached_file], "recipient_email": "pt@example.test", "purpose": "copy"},
        ok=(201,),
    ),
    Op("revoke_link", "POST", lambda ctx: f"/api/v1/cases/{ctx.number}/links/{ctx.link}/revoke", "submitted"),
    # files
    Op(
        "file_detail",
        "DELETE",
        lambda ctx: f"/api/v1/files/{ctx.own_file}",
        body=lambda ctx: {"reason": "uploaded by mistake"},
        ok=(204,),
    ),
    Op(
        "file_detail",
        "DELETE",
        lambda ctx: f"/api/v1/files/{ctx.attached_file}",
        "draft",
        body=lambda ctx: {"reason": "wrong patient's scan"},
        ok=(204,),
        session_only=True,
    ),
    # tus: creation, a new version of a case's file, and an upload's life
    Op(
        "tus_collection",
        "POST",
        lambda ctx: "/api/v1/uploads/",
        kind="tus",
        ok=(201,),
        creates=True,
        headers=lambda ctx: {"HTTP_UPLOAD_LENGTH": "100", "HTTP_UPLOAD_METADATA": _meta(organization=ctx.practice)},
    ),
    Op(
        "tus_collection",
        "POST",
        lambda ctx: "/api/v1/uploads/",
        "draft",
        kind="tus",
        ok=(201,),
        headers=lambda ctx: {
            "HTTP_UPLOAD_LENGTH": str(len(UPLOAD_BYTES)),
            "HTTP_UPLOAD_METADATA": _meta(organization=ctx.practice, file=ctx.attached_file),
        },
    ),
    Op("tus_upload", "HEAD", lambda ctx: f"/api/v1/uploads/{ctx.upload}", kind="tus"),
    Op(
        "tus_upload",
        "PATCH",
        lambda ctx: f"/api/v1/uploads/{ctx.upload}",
        kind="tus",
        body=lambda ctx: UPLOAD_BYTES,
        ok=(204,),
        headers=_patch_headers,
    ),
    Op("tus_upload", "DELETE", lambda ctx: f"/api/v1/uploads/{ctx.upload}", kind="tus", ok=(204,)),
    Op(
        "tus_upload_lease",
        "POST",
        lambda ctx: f"/api/v1/uploads/{ctx.upload}/handover/lease",
        kind="lease",
        headers=_lease_headers,
    ),
    # DICOMweb STOW-RS: into a case (the attach rules), or as the sender's own uploads
    Op(
        "dicomweb_case_studies",
        "POST",
        lambda ctx: f"/dicomweb/cases/{ctx.number}/studies",
        "draft",
        body=lambda ctx: STOW_BODY,
        headers=_stow_headers,
    ),
    Op(
        "dicomweb_case_study",
        "POST",
        lambda ctx: f"/dicomweb/cases/{ctx.number}/studies/{STOW_STUDY}",
        "draft",
        body=lambda ctx: STOW_BODY,
        headers=_stow_headers,
    ),
    Op(
        "dicomweb_case_studies",
        "POST",
        lambda ctx: f"/dicomweb/cases/{ctx.number}/studies",
        "received",
        body=lambda ctx: STOW_BODY,
        headers=_stow_headers,
        side="lab",
    ),
    Op(
        "dicomweb_studies",
        "POST",
        lambda ctx: "/dicomweb/studies",
        body=lambda ctx: STOW_BODY,
        headers=_stow_headers,
        creates=True,
    ),
    Op(
        "dicomweb_study",
        "POST",
        lambda ctx: f"/dicomweb/studies/{STOW_STUDY}",
        body=lambda ctx: STOW_BODY,
        headers=_stow_headers,
        creates=True,
    ),
    # imaging orders: the practice orders, the imaging center confirms and delivers
    Op("create_order", "POST", _case("/imaging-orders"), "draft", body=lambda ctx: ORDER_BODY, ok=(201,)),
    Op("receive_order", "POST", _order("receive"), "imaging_sent", side="imaging"),
    Op("deliver_order", "POST", _order("deliver"), "imaging_studied", side="imaging"),
    Op("cancel_order", "POST", _order("cancel"), "imaging_received", body=lambda ctx: {"reason": "done elsewhere"}),
    Op("revoke_access", "POST", _order("revoke-access"), "imaging_received"),
    Op(
        "case_imaging_order",
        "POST",
        _org("cases/{ctx.number}/imaging-orders/"),
        "draft",
        kind="web",
        body=lambda ctx: {f"imaging-{k}": v for k, v in ORDER_BODY.items()},
        ok=(302,),
    ),
    Op(
        "case_action",
        "POST",
        _org("cases/{ctx.number}/action/", "imaging"),
        "imaging_sent",
        kind="web",
        side="imaging",
        body=lambda ctx: {"operation": "imaging_receive", "order": ctx.ids["order"]},
        ok=(302,),
    ),
    # the organization's pages (a person signed in with MFA; tokens are never let in)
    Op(
        "invite",
        "POST",
        _org("members/invite/"),
        kind="web",
        body=lambda ctx: {"email": "n@smile.test", "role": "staff"},
    ),
    Op("member_update", "POST", _org("members/{ctx.ids[staff]}/"), kind="web", body=lambda ctx: {"role": "clinician"}),
    Op("invitation_revoke", "POST", _org("invitations/{ctx.ids[invitation]}/revoke/"), kind="web"),
    Op("org_settings", "POST", _org("settings/"), kind="web"),
    Op(
        "pixel_masks",
        "POST",
        _org("settings/pixel-masks/"),
        kind="web",
        body=lambda ctx: {"operation": "save", "manufacturer": "Acme", "model": "Pan 1", "regions": "0, 0, 40, 12"},
        ok=(302,),
    ),
    Op("connection_request", "POST", _org("connections/request/"), kind="web"),
    Op("connection_update", "POST", _org("connections/{ctx.ids[connection]}/"), kind="web"),
    Op("emergency", "POST", _org("emergency/"), kind="web"),
    Op("emergency_revoke", "POST", _org("emergency/{ctx.ids[grant]}/revoke/"), kind="web"),
    Op(
        "retention",
        "POST",
        _org("retention/"),
        kind="web",
        body=lambda ctx: {"operation": "hold", "reason": "Litigation request 2026-14"},
    ),
    Op("service_accounts", "POST", _org("service-accounts/"), kind="web"),
    Op(
        "alert_acknowledge",
        "POST",
        _org("alerts/{ctx.ids[alert]}/acknowledge/"),
        kind="web",
        body=lambda ctx: {"note": "reviewed with the team"},
        ok=(302,),
    ),
    Op(
        "audit_reviews",
        "POST",
        _org("audit/reviews/"),
        kind="web",
        body=lambda ctx: {"period_start": "2026-01-01", "period_end": "2026-01-31", "notes": "sign-ins, links"},
        ok=(302,),
    ),
    Op(
        "incidents",
        "POST",
        _org("incidents/"),
        kind="web",
        body=lambda ctx: {"title": "Lost laptop", "description": "in a taxi", "discovered_at": "2026-01-05T10:00"},
        ok=(302,),
    ),
    Op(
        "incident_detail",
        "POST",
        _org("incidents/{ctx.ids[incident]}/"),
        kind="web",
        body=lambda ctx: {"individuals_affected": "0", "most_in_one_state": "0", "decision": "undecided"},
        ok=(302,),
    ),
    Op(
        "compliance_setup",
        "POST",
        _org("compliance/setup/"),
        kind="web",
        body=lambda ctx: {"operation": "vendors", "vendors": ["E-mail provider"]},
        ok=(302,),
    ),
    Op(
        "risk_assessments",
        "POST",
        _org("compliance/risk/"),
        kind="web",
        body=lambda ctx: {},
        ok=(302,),
    ),
    Op(
        "risk_assessment",
        "POST",
        _org("compliance/risk/{ctx.ids[assessment]}/"),
        kind="web",
        body=lambda ctx: {"operation": "answer", "question": "sanctions", "answer": "yes", "note": ""},
        ok=(302,),
    ),
    Op(
        "incident_letter",
        "POST",
        _org("incidents/{ctx.ids[incident]}/letters/individuals/"),
        kind="web",
        body=lambda ctx: {"what_happened": "A laptop was stolen.", "operation": "save"},
        ok=(302,),
    ),
    Op(
        "subject_requests",
        "POST",
        _org("compliance/requests/"),
        kind="web",
        body=lambda ctx: {"patient": ctx.ids["patient"], "kind": "access", "received_on": "2026-01-05"},
        ok=(302,),
    ),
    Op(
        "subject_request",
        "POST",
        _org("compliance/requests/{ctx.ids[subject_request]}/"),
        kind="web",
        body=lambda ctx: {"operation": "restrict", "text": "No sharing outside the practice"},
        ok=(302,),
    ),
    Op(
        "vendors",
        "POST",
        _org("vendors/"),
        kind="web",
        body=lambda ctx: {"name": "MailCo", "baa_status": "none"},
        ok=(302,),
    ),
    Op(
        "vendor_detail",
        "POST",
        _org("vendors/{ctx.ids[vendor]}/"),
        kind="web",
        body=lambda ctx: {
            "operation": "reassess",
            **{"security": "yes", "encryption": "yes", "mfa": "yes", "audit": "yes", "breaches": "no"},
        },
        ok=(302,),
    ),
    Op(
        "baa_list",
        "POST",
        _org("baas/"),
        kind="web",
        body=lambda ctx: {"connection": ctx.ids["connection"]},
        ok=(302,),
    ),
    Op(
        "baa_detail",
        "POST",
        _org("baas/{ctx.ids[baa]}/"),
        kind="web",
        body=lambda ctx: {"report_days": "10", "operation": "save"},
        ok=(302,),
    ),
    Op(
        "baa_sign",
        "POST",
        _org("baas/{ctx.ids[baa_final]}/sign/"),
        kind="web",
        body=lambda ctx: {"name": "Dana Smile", "title": "Owner"},
        ok=(302,),
    ),
    Op(
        "compliance",
        "POST",
        _org("compliance/"),
        kind="web",
        body=lambda ctx: {"privacy": "", "security": ""},
        ok=(302,),
    ),
    Op(
        "policy",
        "POST",
        _org("compliance/policies/sanctions/"),
        kind="web",
        body=lambda ctx: {"operation": "save", "body": "Sanctions are applied fairly."},
        ok=(302,),
    ),
    Op(
        "compliance_attest",
        "POST",
        _org("compliance/attest/"),
        kind="web",
        body=lambda ctx: {"item": "devices", "note": "Laptops encrypted; disposal log in the office binder."},
        ok=(302,),
    ),
    Op(
        "gdpr",
        "POST",
        _org("compliance/gdpr/"),
        kind="web",
        body=lambda ctx: {"operation": "profile", "applies": "on", "contact": "dpo@smile.test"},
        ok=(302,),
    ),
    Op(
        "audit_filters",
        "POST",
        _org("audit/filters/"),
        kind="web",
        body=lambda ctx: {"name": "Refusals", "query": "outcome=denied"},
        ok=(302,),
    ),
    Op(
        "access_reviews",
        "POST",
        _org("access-reviews/"),
        kind="web",
        body=lambda ctx: {"operation": "start"},
        ok=(302,),
    ),
    Op(
        "training",
        "POST",
        _org("training/"),
        kind="web",
        body=lambda ctx: {"title": "HIPAA basics", "body": "Minimum necessary", "quiz": ""},
        ok=(302,),
    ),
    Op(
        "training_module",
        "POST",
        _org("training/{ctx.ids[module]}/"),
        kind="web",
        body=lambda ctx: {"operation": "onboarding", "required": "on"},
        ok=(302,),
    ),
    Op("alert_rules", "POST", _org("alerts/rules/"), kind="web", body=lambda ctx: ALERT_RULES_FORM, ok=(302,)),
    Op("service_account_deactivate", "POST", _org("service-accounts/{ctx.ids[account]}/deactivate/"), kind="web"),
    Op("case_new", "POST", _org("cases/new/"), kind="web"),
    Op("case_edit", "POST", _org("cases/{ctx.number}/edit/"), "draft", kind="web"),
    Op(
        "case_action",
        "POST",
        _org("cases/{ctx.number}/action/"),
        "draft",
        kind="web",
        body=lambda c: {"operation": "submit"},
    ),
    Op(
        "case_action",
        "POST",
        _org("cases/{ctx.number}/action/", "lab"),
        "submitted",
        kind="web",
        side="lab",
        body=lambda ctx: {"operation": "receive"},
    ),
    Op(
        "case_attach",
        "POST",
        _org("cases/{ctx.number}/files/attach/"),
        "draft",
        kind="web",
        body=lambda ctx: {"file": ctx.own_file, "kind": "scan", "label": "upper"},
    ),
    # The Files page: the owner's own upload to the clinician's draft, then deleting it. Both
    # answer a success with a redirect to the page (a refusal re-renders the form with 400).
    Op(
        "file_attach",
        "POST",
        _org("files/{ctx.own_file}/attach/"),
        "draft",
        kind="web",
        body=lambda ctx: {"case": ctx.number, "kind": "scan", "label": "upper"},
        ok=(302,),
    ),
    Op(
        "file_destroy",
        "POST",
        _org("files/{ctx.own_file}/delete/"),
        kind="web",
        body=lambda ctx: {"reason": "Uploaded twice"},
        ok=(302,),
    ),
    Op("case_share", "POST", _org("cases/{ctx.number}/share/"), "submitted", kind="web"),
    Op("share_revoke", "POST", _org("cases/{ctx.number}/share/{ctx.link}/revoke/"), "submitted", kind="web"),
]
for _op in OPERATIONS:
    if _op.kind == "web":
        # A form the guard let through answers with the page, its redirect, or its validation
        # (these rows send only what reaching the action takes; the views' own tests fill forms).
        _op.session_only = True
        if _op.ok == (200,):  # not stated by the row
            _op.ok = (200, 302, 400)

# URL patterns with no state-changing operation of their own, or whose credential is not an
# organization's member at all, each with where its access rules are tested instead.
NOT_IN_THE_MATRIX = {
    "home": "read-only",
    "healthz": "public, read-only",
    "org_home": "read-only",
    "members": "read-only list",
    "connections": "read-only list",
    "files": "read-only page (uploads go through tus): vault/tests/test_files_page.py",
    "files_recent": "read-only partial",
    "case_list": "read-only",
    "case_detail": "read-only",
    "case_files": "read-only partial",
    "case_slip": "read-only PDF",
    "scan_viewer": "read-only page (its files come through file_content)",
    "study_viewer": "read-only page (its slices come through DICOMweb)",
    "xray_viewer": "read-only page (its images come through DICOMweb and case_image): "
    "imaging/tests/test_xray_viewer.py tries every wrong credential",
    "photo_gallery": "read-only page: imaging/tests/test_xray_viewer.py tries every wrong credential",
    "case_image": "read-only image of a case's file: imaging/tests/test_xray_viewer.py tries every wrong credential",
    "mask_preview": "read-only picture of a case's DICOM file with the pixel mask drawn: "
    "imaging/tests/test_pixel_masks.py (other organization, lab without the mask, token, no mask)",
    "case_thumbnail": "read-only picture: imaging/tests/test_thumbnails.py tries every wrong credential",
    "disclosures": "read-only",
    "disclosures_export": "read-only export: sharing/tests/test_accounting.py",
    "backups": "read-only (retention/tests/test_backup_page.py)",
    "retention_certificate": "read-only PDF (retention/tests/test_retention_page.py)",
    "audit_log": "read-only (its archive reads: audit/tests/test_archive_reads.py)",
    "audit_archive_read": "read-only poll: audit/tests/test_archive_reads.py",
    "alerts": "read-only page: audit/tests/test_alerts.py",
    "incident_letter_pdf": "read-only PDF: compliance/tests/test_letters.py",
    "subject_request_export": "read-only archive of an access request: compliance/tests/test_subject_requests.py",
    "policies": "read-only list: compliance/tests/test_policies.py",
    "compliance_report": "read-only PDF: compliance/tests/test_checklist.py",
    "gdpr_record_pdf": "read-only PDF: compliance/tests/test_gdpr.py",
    "training_attachment": "read-only document of a module: compliance/tests/test_training_onboarding.py",
    "risk_evidence": "read-only evidence document: compliance/tests/test_risk.py",
    "risk_report": "read-only PDF: compliance/tests/test_risk.py",
    "training_certificate": "read-only PDF of one's own pass: compliance/tests/test_training_onboarding.py",
    "vendor_baa_document": "read-only download: compliance/tests/test_vendor_baa.py (other organization, role)",
    "baa_file": "read-only PDF or Word copy of an agreement: compliance/tests/test_baa.py (other organization)",
    "link_forensics": "read-only page: audit/tests/test_forensics.py",
    "file_forensics": "read-only page: audit/tests/test_forensics.py",
    "person_forensics": "read-only page: audit/tests/test_forensics.py",
    "patient_report": "read-only page and exports: audit/tests/test_patient_report.py",
    "audit_export": "read-only",
    "invitation_accept": "the invitation's token is the credential: orgs/tests/test_members.py",
    "setup_password": "the setup link is the credential: accounts tests",
    "share_landing": "the link and its one-time code are the credential: sharing/tests/test_links.py",
    "share_send_code": "sharing/tests/test_links.py",
    "share_verify": "sharing/tests/test_links.py",
    "share_files": "sharing/tests/test_links.py",
    "share_download": "sharing/tests/test_links.py",
    "share_download_all": "read-only, one download of the link's allowance: sharing/tests/test_download_all.py",
    "mfa_required": "the person's own account: accounts tests",
    "security": "the person's own account: accounts tests",
    "preferences": "the person's own account: accounts tests",
    "notation_preference": "the person's own account: cases/tests/test_notation_switch.py",
    "token_create": "the person's own account: accounts/tests/test_tokens.py",
    "token_revoke": "the person's own account: accounts/tests/test_tokens.py",
    "session_end": "the person's own account: accounts/tests/test_sessions.py",
    "logout_everywhere": "the person's own account: accounts/tests/test_sessions.py",
    "session_status": "the person's own session",
    "session_keepalive": "the person's own session",
    "api_me": "read-only",
    "tus_upload_lease_step": "the lease token and the internal key: transfer/tests/test_upload_handover.py",
    "transfer_ticket_redeem": "the transfer server's internal key: transfer/tests/test_ticket_ledger.py",
    "file_list": "read-only",
    "file_content": "read-only (downloads)",
    "openapi_json": "public document",
    "api_docs": "public page",
    "api-root": "public index",
    "list_cases": "read-only",
    "list_orders": "read-only: api/tests/test_imaging_orders_api.py",
    "case_orders": "read-only: api/tests/test_imaging_orders_api.py",
    "retrieve_case": "read-only",
    "list_attachments": "read-only",
    "download_all": (
        "read-only, ?deidentified=1 too (api/tests/test_download_all.py, test_download_deidentified.py: "
        "other organization, scope, revoked lab)"
    ),
    "list_messages": "read-only",
    "list_links": "read-only",
    "preview_link": "read-only, practice only: api/tests/test_download_deidentified.py (other org, scope, lab)",
    "share_preview": "read-only page, practice only: sharing/tests/test_deidentified_links.py (other org, lab)",
    "search_cases": "read-only (a POST so the term stays out of URLs): api/tests/test_case_workflow.py",
    "organization_detail": "read-only: api/tests/test_organization_api.py",
    "case_live": "read-only poll: cases/tests/test_live.py",
    "notifications": "the person's own notifications: notifications/tests/test_notifications.py",
    "notification_bell": "the person's own notifications: notifications/tests/test_notifications.py",
    "notifications_read_all": "the person's own notifications: notifications/tests/test_notifications.py",
    "notification_read": "the person's own notifications: notifications/tests/test_notifications.py",
    "organization_members": "read-only: api/tests/test_organization_api.py",
    "audit_events": "read-only: api/tests/test_organization_api.py",
    "audit_inclusion_proof": "read-only: audit/tests/test_proofs_api.py",
    "audit_consistency_proof": "read-only: audit/tests/test_proofs_api.py",
    **{
        name: "read-only DICOMweb: imaging/tests/test_dicomweb.py"
        for name in (
            "dicomweb_series",
            "dicomweb_series_retrieve",
            "dicomweb_instances",
            "dicomweb_series_metadata",
            "dicomweb_instance",
            "dicomweb_instance_metadata",
            "dicomweb_frames",
            "dicomweb_rendered",
            "dicomweb_frame_rendered",
        )
    },
}


def _prepare(world: World, op: Op) -> Ctx:
    _center(world)  # every row's world has the practice's imaging center too
    ctx = _world_at(world, op.stage)
    owner = world.personas.members["owner"]
    staff = Membership.objects.get(organization=world.practice, user=world.personas.members["staff"])
    ctx.ids["staff"] = str(staff.pk)
    ctx.ids["connection"] = str(Connection.objects.get(requester=world.practice, recipient=world.lab).pk)
    ctx.ids["invitation"] = str(
        Invitation.objects.create(
            organization=world.practice,
            email="invitee@smile.test",
            role="staff",
            digest="0" * 64,
            expires_at=timezone.now() + timezone.timedelta(days=1),
            invited_by=owner,
        ).pk
    )
    ctx.ids["grant"] = str(
        EmergencyAccess.objects.create(
            organization=world.practice,
            user=world.personas.members["clinician"],
            granted_by=owner,
            reason="covering the front desk",
            expires_at=timezone.now() + timezone.timedelta(hours=1),
        ).pk
    )
    ctx.ids["incident"] = str(
        Incident.objects.create(
            organization=world.practice,
            title="Lost laptop",
            description="x",
            discovered_at=timezone.now(),
            decision=Decision.BREACH,  # decided: its notices have letters
        ).pk
    )
    patient = Patient.objects.create(practice=world.practice, name="Matrix Patient")
    ctx.ids["patient"] = str(patient.pk)
    ctx.ids["subject_request"] = str(
        SubjectRequest.objects.create(
            organization=world.practice, patient=patient, kind=RequestKind.RESTRICTION, received_on=date(2026, 1, 5)
        ).pk
    )
    ctx.ids["module"] = str(
        TrainingModule.objects.create(organization=world.practice, title="HIPAA basics", body="Minimum necessary").pk
    )
    if op.name != "risk_assessments":  # that row starts one: there must be none in progress
        ctx.ids["assessment"] = str(RiskAssessment.objects.create(organization=world.practice).pk)
    officer = resolve(world.personas.members["compliance_officer"], world.practice)
    assert officer is not None
    connection = Connection.objects.get(pk=ctx.ids["connection"])
    ctx.ids["baa"] = str(baa.draft(officer, connection).pk)
    final = baa.draft(officer, connection)
    ctx.ids["baa_final"] = str(
        baa.save(officer, final, final.sections, report_days=10, expires_on=None, finalize=True).pk
    )
    ctx.ids["vendor"] = str(Vendor.objects.create(organization=world.practice, name="CloudStore").pk)
    ctx.ids["alert"] = str(
        Alert.objects.create(organization=world.practice, kind=AlertKind.MASS_DOWNLOAD, summary="60 files").pk
    )
    ctx.ids["account"] = str(ServiceAccount.objects.create(organization=world.practice, name="pms", role="staff").pk)
    return ctx


# --- credentials ----------------------------------------------------------------------------
def _actor(world: World, op: Op) -> tuple[User, Any]:
    if op.side == "imaging":
        return _center(world)
    if op.side == "lab":
        return world.technician, world.lab
    return world.personas.members["owner"], world.practice


def _token_client(world: World, user: User, organization: Any, scopes: list[str]) -> Client:
    _token, raw = create_api_token(
        organization=organization, name="matrix", scopes=scopes, days=1, actor=user, user=user
    )
    return Client(HTTP_AUTHORIZATION=f"Bearer {raw}")


def right_credential(world: World, op: Op, ctx: Ctx) -> Client:
    user, organization = _actor(world, op)
    if op.session_only:
        return signed_in_client(user)
    return _token_client(world, user, organization, ALL_SCOPES)


def _anonymous(world: World, op: Op, ctx: Ctx) -> Client:
    return Client()


def _read_only_token(world: World, op: Op, ctx: Ctx) -> Client:
    user, organization = _actor(world, op)
    return _token_client(world, user, organization, READ_SCOPES)


def _full_token(world: World, op: Op, ctx: Ctx) -> Client:
    user, organization = _actor(world, op)
    return _token_client(world, user, organization, ALL_SCOPES)


def _other_organization_token(world: World, op: Op, ctx: Ctx) -> Client:
    """The same person also owns another organization: a token made there reaches nothing here."""
    user, _organization = _actor(world, op)
    elsewhere = make_org(f"Elsewhere {op.side}", kind=_organization.kind)
    add_member(elsewhere, user, "owner")
    return _token_client(world, user, elsewhere, ALL_SCOPES)


def _deactivated_member(world: World, op: Op, ctx: Ctx) -> Client:
    """Deactivated in the organization, the account itself still active, signed in again."""
    user, organization = _actor(world, op)
    Membership.objects.filter(organization=organization, user=user).update(is_active=False)
    return signed_in_client(user)


def _revoked_lab(world: World, op: Op, ctx: Ctx) -> Client:
    """The lab, with a full token, after the practice revoked its access to the case (for an
    imaging center's operation: the center, after the practice revoked the order's access)."""
    if op.side == "imaging":
        response = world.api("owner").post(f"cases/{ctx.number}/imaging-orders/{ctx.ids['order']}/revoke-access")
        assert response.status_code == 200, response.content
        user, center = _center(world)
        return _token_client(world, user, center, ALL_SCOPES)
    if ctx.number:
        response = world.api("owner").post(f"cases/{ctx.number}/revoke-lab-access")
        assert response.status_code in (200, 422), response.content  # 422: a draft was never the lab's
    return _token_client(world, world.personas.lab_manager, world.lab, ALL_SCOPES)


def _outsider(world: World, op: Op, ctx: Ctx) -> Client:
    return signed_in_client(world.personas.outsider)


WRONG_CREDENTIALS: dict[str, Callable[[World, Op, Ctx], Client]] = {
    "anonymous": _anonymous,
    "read-only token": _read_only_token,
    "token of another organization": _other_organization_token,
    "deactivated member": _deactivated_member,
    "lab after revocation": _revoked_lab,
    "member of another organization": _outsider,
    "token where a person must act": _full_token,
}


CROSS_ORGANIZATION = {"token of another organization", "lab after revocation", "member of another organization"}


# --- what changed ---------------------------------------------------------------------------
VOLATILE = {"last_used_at", "last_login", "updated_at"}
WATCHED = [
    "cases.Case",
    "cases.CaseItem",
    "cases.Attachment",
    "cases.Message",
    "cases.CaseEvent",
    "cases.ImagingOrder",
    "imaging.PixelMask",
    "audit.Alert",
    "audit.AlertRule",
    "audit.AuditReview",
    "compliance.Incident",
    "compliance.Vendor",
    "compliance.BaaDocument",
    "compliance.BaaSignature",
    "compliance.VendorReassessment",
    "compliance.Officers",
    "compliance.TrainingModule",
    "compliance.TrainingCompletion",
    "compliance.AccessReview",
    "compliance.AccessReviewItem",
    "compliance.RiskAssessment",
    "compliance.RiskAnswer",
    "compliance.RiskEntry",
    "compliance.RiskEvidence",
    "compliance.SubjectRequest",
    "compliance.Policy",
    "compliance.PolicyVersion",
    "compliance.PolicyAcknowledgement",
    "compliance.Attestation",
    "compliance.GdprProfile",
    "compliance.ImpactAssessment",
    "audit.SavedFilter",
    "audit.ReviewSchedule",
    "vault.StoredObject",
    "vault.ObjectVersion",
    "vault.Upload",
    "sharing.ExternalLink",
    "orgs.Membership",
    "orgs.Invitation",
    "orgs.Connection",
    "orgs.EmergencyAccess",
    "orgs.Organization",
    "accounts.ServiceAccount",
    "accounts.ApiToken",
]


def snapshot() -> dict[str, list[dict[str, Any]]]:
    state = {}
    for label in WATCHED:
        model = apps.get_model(label)
        rows = model.objects.order_by("pk").values()
        state[label] = [{k: v for k, v in row.items() if k not in VOLATILE} for row in rows]
    return state


def send(client: Client, op: Op, ctx: Ctx) -> Any:
    body = op.body(ctx)
    headers = op.headers(ctx)
    if op.kind in ("tus", "lease"):
        headers = {**TUS, **headers}
    path = op.path(ctx)
    if op.kind == "web":
        return client.post(path, body, **headers)
    if isinstance(body, bytes):
        content_type = headers.pop("CONTENT_TYPE")
        return client.generic(op.method, path, body, content_type=content_type, **headers)
    if op.method == "HEAD":
        return client.head(path, **headers)
    return client.generic(op.method, path, json.dumps(body), content_type="application/json", **headers)


def refused(response: Any, op: Op) -> bool:
    if response.status_code in (401, 403, 404):
        return True
    # A web page sends whoever is not signed in to sign in.
    return op.kind == "web" and response.status_code == 302 and "/accounts/login/" in response["Location"]


# --- the matrix -----------------------------------------------------------------------------
@pytest.mark.parametrize("op", OPERATIONS, ids=lambda op: op.id)
def test_the_right_credential_succeeds(world: World, op: Op) -> None:
    ctx = _prepare(world, op)
    response = send(right_credential(world, op, ctx), op, ctx)
    assert response.status_code in op.ok, response.content[:500]
    assert not refused(response, op)


def _applies(op: Op, credential: str) -> bool:
    if credential == "token where a person must act":
        return op.session_only  # elsewhere a token is the right credential: the positive control
    # An operation that only creates, in the credential's own organization, is rightly done by a
    # credential of another organization: there only the kinds with no organization to act for apply.
    return not (op.creates and credential in CROSS_ORGANIZATION)


WRONG = [(op, credential) for op in OPERATIONS for credential in WRONG_CREDENTIALS if _applies(op, credential)]


@pytest.mark.parametrize(("op", "credential"), WRONG, ids=[f"{op.id}-{credential}" for op, credential in WRONG])
def test_every_wrong_credential_is_refused_and_changes_nothing(world: World, op: Op, credential: str) -> None:
    ctx = _prepare(world, op)
    client = WRONG_CREDENTIALS[credential](world, op, ctx)
    before = snapshot()

    response = send(client, op, ctx)

    assert refused(response, op), (response.status_code, response.content[:500])
    assert snapshot() == before


# --- coverage: no operation without its row ------------------------------------------------
def _routes(patterns: list[Any]) -> list[URLPattern]:
    found: list[URLPattern] = []
    for entry in patterns:
        if isinstance(entry, URLResolver):
            found.extend(_routes(entry.url_patterns))
        else:
            found.append(entry)
    return found


def test_every_url_has_a_row_or_a_reason() -> None:
    covered = {op.name for op in OPERATIONS} | set(NOT_IN_THE_MATRIX)
    missing = []
    for pattern in _routes(get_resolver().url_patterns):
        module = getattr(pattern.callback, "__module__", "")
        if module.startswith(("allauth.", "django.contrib.staticfiles")):
            continue  # test_url_coverage declares each of them
        if pattern.name not in covered:
            missing.append(pattern.name)
    assert missing == [], f"operations without a row in the credential matrix: {missing}"


# POSTs that change nothing: searches whose terms (patient names) must stay out of URLs.
READ_ONLY_POSTS = {("POST", "/api/v1/cases/search")}


def test_every_state_changing_api_operation_has_a_row(client: Client) -> None:
    document = client.get("/api/v1/openapi.json").json()
    placeholder = Ctx(world=cast(World, None), number="CB-1", attached_file="f1", own_file="f2", upload="u1", link="l1")
    placeholder.ids["order"] = "o1"
    rows = {(op.method, op.path(placeholder)) for op in OPERATIONS if op.kind != "web"}
    missing = []
    for route, item in document["paths"].items():
        pattern = re.compile("^" + re.sub(r"\{[^}]+\}", "[^/]+", route) + "$")  # paths hold no other specials
        for method in item:
            if (method.upper(), route) in READ_ONLY_POSTS:
                continue
            if method.upper() in ("POST", "PUT", "PATCH", "DELETE") and not any(
                m == method.upper() and pattern.match(path) for m, path in rows
            ):
                missing.append(f"{method.upper()} {route}")
    assert missing == [], f"state-changing API operations without a row in the credential matrix: {missing}"
