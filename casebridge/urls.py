"""URL map. Every view is declared public, signed-in, token-only or protected by a policy
permission (see access/guards.py); access/tests/test_url_coverage.py enforces it."""

from __future__ import annotations

from django.urls import include, path

from casebridge.accounts import views as account_views
from casebridge.api import files as file_api
from casebridge.api import openapi as rest_api
from casebridge.api import uploads as upload_api
from casebridge.audit import alert_views, forensics_views, review_views
from casebridge.audit import views as audit_views
from casebridge.cases import live as case_live
from casebridge.cases import slip as case_slip
from casebridge.cases import views as case_views
from casebridge.compliance import baa_views, policy_views, request_views
from casebridge.compliance import views as compliance_views
from casebridge.imaging import dicomweb
from casebridge.imaging import views as imaging_views
from casebridge.notifications import views as notification_views
from casebridge.orgs import views as org_views
from casebridge.retention import views as retention_views
from casebridge.sharing import recipient_views as share_public
from casebridge.sharing import views as share_views
from casebridge.vault import transfer as vault_transfer
from casebridge.vault import views as vault_views

org_patterns = [
    path("", org_views.org_home, name="org_home"),
    path("members/", org_views.members, name="members"),
    path("members/invite/", org_views.invite, name="invite"),
    path("members/<uuid:membership_id>/", org_views.member_update, name="member_update"),
    path(
        "invitations/<uuid:invitation_id>/revoke/",
        org_views.invitation_revoke,
        name="invitation_revoke",
    ),
    path("settings/", org_views.org_settings, name="org_settings"),
    path("settings/pixel-masks/", imaging_views.pixel_masks, name="pixel_masks"),
    path("connections/", org_views.connections, name="connections"),
    path("connections/request/", org_views.connection_request, name="connection_request"),
    path("connections/<uuid:connection_id>/", org_views.connection_update, name="connection_update"),
    path("emergency/", org_views.emergency, name="emergency"),
    path("emergency/<uuid:grant_id>/revoke/", org_views.emergency_revoke, name="emergency_revoke"),
    path("service-accounts/", org_views.service_accounts, name="service_accounts"),
    path(
        "service-accounts/<uuid:account_id>/deactivate/",
        org_views.service_account_deactivate,
        name="service_account_deactivate",
    ),
    path("files/", vault_views.files, name="files"),
    path("files/recent/", vault_views.files_recent, name="files_recent"),
    path("files/<uuid:file_id>/attach/", vault_views.file_attach, name="file_attach"),
    path("files/<uuid:file_id>/delete/", vault_views.file_destroy, name="file_destroy"),
    path("cases/", case_views.case_list, name="case_list"),
    path("cases/new/", case_views.case_new, name="case_new"),
    path("cases/<str:number>/", case_views.case_detail, name="case_detail"),
    path("cases/<str:number>/edit/", case_views.case_edit, name="case_edit"),
    path("cases/<str:number>/action/", case_views.case_action, name="case_action"),
    path("cases/<str:number>/files/", case_views.case_files, name="case_files"),
    path("cases/<str:number>/slip.pdf", case_slip.case_slip, name="case_slip"),
    path("cases/<str:number>/files/attach/", case_views.case_attach, name="case_attach"),
    path("cases/<str:number>/imaging-orders/", case_views.case_imaging_order, name="case_imaging_order"),
    path("cases/<str:number>/scans/", imaging_views.scan_viewer, name="scan_viewer"),
    path("cases/<str:number>/imaging/<uuid:series_id>/", imaging_views.study_viewer, name="study_viewer"),
    path("cases/<str:number>/xrays/", imaging_views.xray_viewer, name="xray_viewer"),
    path("cases/<str:number>/photos/", imaging_views.photo_gallery, name="photo_gallery"),
    path("cases/<str:number>/images/<uuid:file_id>/", imaging_views.case_image, name="case_image"),
    path("cases/<str:number>/images/<uuid:file_id>/mask.png", imaging_views.mask_preview, name="mask_preview"),
    path("cases/<str:number>/thumbnails/<uuid:thumbnail_id>/", imaging_views.case_thumbnail, name="case_thumbnail"),
    path("cases/<str:number>/share/", share_views.case_share, name="case_share"),
    path("cases/<str:number>/share/preview/", share_views.share_preview, name="share_preview"),
    path("cases/<str:number>/share/<uuid:link_id>/revoke/", share_views.link_revoke, name="share_revoke"),
    path("cases/<str:number>/live/", case_live.case_live, name="case_live"),
    path("disclosures/", share_views.disclosures, name="disclosures"),
    path("disclosures/export/", share_views.disclosures_export, name="disclosures_export"),
    path("notifications/", notification_views.notifications, name="notifications"),
    path("notifications/bell/", notification_views.notification_bell, name="notification_bell"),
    path("notifications/read-all/", notification_views.notifications_read_all, name="notifications_read_all"),
    path(
        "notifications/<uuid:notification_id>/read/",
        notification_views.notification_read,
        name="notification_read",
    ),
    path("audit/", audit_views.audit_log, name="audit_log"),
    path("audit/archive-reads/<uuid:read_id>/", audit_views.audit_archive_read, name="audit_archive_read"),
    path("audit/links/<uuid:link_id>/", forensics_views.link_forensics, name="link_forensics"),
    path("audit/files/<uuid:file_id>/", forensics_views.file_forensics, name="file_forensics"),
    path("audit/people/<uuid:user_id>/", forensics_views.person_forensics, name="person_forensics"),
    path("audit/patients/<uuid:patient_ref>/", forensics_views.patient_report, name="patient_report"),
    path("incidents/", compliance_views.incident_list, name="incidents"),
    path("vendors/", compliance_views.vendor_list, name="vendors"),
    path("vendors/<uuid:vendor_id>/", baa_views.vendor_detail, name="vendor_detail"),
    path("vendors/<uuid:vendor_id>/baa-document/", baa_views.vendor_baa_document, name="vendor_baa_document"),
    path("baas/", baa_views.baa_list, name="baa_list"),
    path("baas/<uuid:document_id>/", baa_views.baa_detail, name="baa_detail"),
    path("baas/<uuid:document_id>/sign/", baa_views.baa_sign, name="baa_sign"),
    path("baas/<uuid:document_id>.<str:kind>", baa_views.baa_file, name="baa_file"),
    path("training/", compliance_views.training_page, name="training"),
    path("training/<uuid:module_id>/", compliance_views.training_module, name="training_module"),
    path(
        "training/<uuid:module_id>/documents/<uuid:attachment_id>/",
        compliance_views.training_attachment,
        name="training_attachment",
    ),
    path(
        "training/certificates/<int:completion_id>.pdf",
        compliance_views.training_certificate,
        name="training_certificate",
    ),
    path("access-reviews/", compliance_views.access_reviews_page, name="access_reviews"),
    path("compliance/", compliance_views.compliance_dashboard, name="compliance"),
    path("compliance/setup/", compliance_views.compliance_setup, name="compliance_setup"),
    path("compliance/risk/", compliance_views.risk_assessments, name="risk_assessments"),
    path("compliance/risk/<uuid:assessment_id>/", compliance_views.risk_assessment, name="risk_assessment"),
    path(
        "compliance/risk/<uuid:assessment_id>/evidence/<uuid:evidence_id>/",
        compliance_views.risk_evidence,
        name="risk_evidence",
    ),
    path("compliance/risk/<uuid:assessment_id>/report.pdf", compliance_views.risk_report, name="risk_report"),
    path("compliance/requests/", request_views.request_list, name="subject_requests"),
    path("compliance/requests/<uuid:request_id>/", request_views.request_detail, name="subject_request"),
    path(
        "compliance/requests/<uuid:request_id>/records.zip", request_views.request_export, name="subject_request_export"
    ),
    path("compliance/attest/", policy_views.compliance_attest, name="compliance_attest"),
    path("compliance/checklist.pdf", policy_views.compliance_report, name="compliance_report"),
    path("compliance/policies/", policy_views.policy_list, name="policies"),
    path("compliance/gdpr/", policy_views.gdpr_page, name="gdpr"),
    path("compliance/gdpr/record.pdf", policy_views.gdpr_record_pdf, name="gdpr_record_pdf"),
    path("compliance/policies/<slug:kind>/", policy_views.policy_detail, name="policy"),
    path("incidents/<uuid:incident_id>/", compliance_views.incident_detail, name="incident_detail"),
    path(
        "incidents/<uuid:incident_id>/letters/<slug:key>/",
        compliance_views.incident_letter,
        name="incident_letter",
    ),
    path(
        "incidents/<uuid:incident_id>/letters/<slug:key>.pdf",
        compliance_views.incident_letter_pdf,
        name="incident_letter_pdf",
    ),
    path("audit/filters/", audit_views.audit_filters, name="audit_filters"),
    path("audit/reviews/", review_views.audit_reviews, name="audit_reviews"),
    path("alerts/", alert_views.alerts_page, name="alerts"),
    path("alerts/rules/", alert_views.alert_rules, name="alert_rules"),
    path("alerts/<uuid:alert_id>/acknowledge/", alert_views.alert_acknowledge, name="alert_acknowledge"),
    path("backups/", retention_views.backups, name="backups"),
    path("retention/", retention_views.retention, name="retention"),
    path(
        "retention/certificates/<uuid:certificate_id>.pdf",
        retention_views.certificate_pdf,
        name="retention_certificate",
    ),
    path("audit/export.csv", audit_views.audit_export, name="audit_export"),
]

# Under /api/ a problem document, elsewhere Django's page (api/errors.py).
handler404 = "casebridge.api.errors.not_found"
handler500 = "casebridge.api.errors.server_error"

urlpatterns = [
    path("", org_views.home, name="home"),
    path("healthz", account_views.healthz, name="healthz"),
    path("o/<slug:org>/", include(org_patterns)),
    path("invitations/<str:token>/", org_views.invitation_accept, name="invitation_accept"),
    path("setup/<str:token>/", account_views.setup_password, name="setup_password"),
    path("s/<str:token>/", share_public.landing, name="share_landing"),
    path("s/<str:token>/code/", share_public.send_code, name="share_send_code"),
    path("s/<str:token>/verify/", share_public.verify, name="share_verify"),
    path("s/<str:token>/files/", share_public.files, name="share_files"),
    path("s/<str:token>/files/<uuid:file_id>/", share_public.download, name="share_download"),
    path("s/<str:token>/files.zip", share_public.download_all, name="share_download_all"),
    path("account/mfa-required/", account_views.mfa_required, name="mfa_required"),
    path("account/security/", account_views.security, name="security"),
    path("account/preferences/", account_views.preferences, name="preferences"),
    path("account/preferences/notation/", account_views.notation_preference, name="notation_preference"),
    path("account/tokens/", account_views.token_create, name="token_create"),
    path("account/tokens/<uuid:token_id>/revoke/", account_views.token_revoke, name="token_revoke"),
    path("account/sessions/<int:session_id>/end/", account_views.session_end, name="session_end"),
    path("account/logout-everywhere/", account_views.logout_everywhere, name="logout_everywhere"),
    path("session/status", account_views.session_status, name="session_status"),
    path("session/keepalive", account_views.session_keepalive, name="session_keepalive"),
    path("api/v1/me", account_views.api_me, name="api_me"),
    path("api/v1/uploads/", upload_api.upload_collection, name="tus_collection"),
    path("api/v1/uploads/<uuid:upload_id>", upload_api.upload_resource, name="tus_upload"),
    path("api/v1/uploads/<uuid:upload_id>/handover/lease", upload_api.upload_lease, name="tus_upload_lease"),
    path(
        "api/v1/uploads/<uuid:upload_id>/handover/<slug:step>",
        upload_api.upload_lease_step,
        name="tus_upload_lease_step",
    ),
    path("api/v1/transfer/tickets/redeem", vault_transfer.redeem_ticket, name="transfer_ticket_redeem"),
    path("api/v1/files/", file_api.file_list, name="file_list"),
    path("api/v1/files/<uuid:file_id>", file_api.file_detail, name="file_detail"),
    path("api/v1/files/<uuid:file_id>/content", file_api.file_content, name="file_content"),
    path("api/v1/", rest_api.urlpatterns()),
    path("dicomweb/", include(dicomweb.urlpatterns())),
    path("accounts/", include("allauth.urls")),
]

handler400 = "casebridge.core.error_pages.bad_request"
handler403 = "casebridge.core.error_pages.permission_denied"
handler404 = "casebridge.core.error_pages.page_not_found"
handler500 = "casebridge.core.error_pages.server_error"
