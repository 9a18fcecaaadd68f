"""The registry of audit actions: every event names one of these dotted actions, or is refused."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class AuditAction:
    name: str
    description: str
    # Security-sensitive actions are highlighted in the review screen and feed alerts.
    sensitive: bool = False


_ACTIONS: dict[str, AuditAction] = {}


class UnknownAuditAction(LookupError):
    pass


def register(name: str, description: str, *, sensitive: bool = False) -> AuditAction:
    if name in _ACTIONS:
        raise ValueError(f"audit action {name!r} is registered twice")
    parts = name.split(".")
    if len(parts) < 2 or not all(p.replace("_", "").isalnum() and p.islower() for p in parts):
        raise ValueError(f"audit action {name!r} must be dotted lower-case words")
    action = AuditAction(name, description, sensitive)
    _ACTIONS[name] = action
    return action


def get(name: str) -> AuditAction:
    try:
        return _ACTIONS[name]
    except KeyError:
        raise UnknownAuditAction(f"{name!r} is not a registered audit action") from None


def all_actions() -> list[AuditAction]:
    return sorted(_ACTIONS.values(), key=lambda a: a.name)


# --- Authentication -----------------------------------------------------------------------
register("auth.login.succeeded", "Signed in")
register("auth.login.failed", "Sign-in failed", sensitive=True)
register("auth.logout", "Signed out")
register("auth.mfa.enrolled", "Added a second factor")
register("auth.mfa.removed", "Removed a second factor", sensitive=True)
register("auth.mfa.failed", "Second-factor check failed", sensitive=True)
register("auth.mfa.recovery_codes_generated", "Generated new recovery codes")
register("auth.recovery_code.used", "Used a recovery code", sensitive=True)
register("auth.password.changed", "Changed password")
register("auth.password.reset", "Reset password by e-mail link", sensitive=True)
register("auth.password.set", "Set password from a setup or invitation link")
register("auth.session.revoked", "Ended a session")
register("auth.session.expired", "Session ended by idle or absolute timeout")
register("auth.reauthenticated", "Confirmed identity before a sensitive action")
register("auth.setup_link.created", "Created a first-administrator setup link", sensitive=True)
register("auth.user.created", "Account created by the server operator (casebridge createadmin)", sensitive=True)
# --- Organizations ------------------------------------------------------------------------
register("org.created", "Organization created")
register("org.setting.changed", "Organization setting changed", sensitive=True)
register("org.profile.changed", "Organization address or phone changed")
register("org.invitation.sent", "Invitation sent")
register("org.invitation.revoked", "Invitation revoked")
register("org.invitation.accepted", "Invitation accepted")
register("org.member.role_changed", "Member role changed", sensitive=True)
register("org.member.deactivated", "Member deactivated", sensitive=True)
register("org.member.reactivated", "Member reactivated", sensitive=True)
register("org.member.removed", "Member removed", sensitive=True)
register("org.member.prescriber_set", "Member marked as prescriber, or their license changed", sensitive=True)
register("org.member.prescriber_removed", "Member no longer a prescriber", sensitive=True)
register("org.connection.requested", "Connection to another organization requested")
register("org.connection.accepted", "Connection accepted")
register("org.connection.changed", "Connection agreement basis changed", sensitive=True)
register("org.connection.ended", "Connection ended", sensitive=True)
# --- Tokens and service accounts ----------------------------------------------------------
register("token.created", "API token created", sensitive=True)
register("token.revoked", "API token revoked")
register("token.used", "API token used")
register("token.rejected", "API token rejected", sensitive=True)
register("service_account.created", "Service account created", sensitive=True)
register("service_account.deactivated", "Service account deactivated", sensitive=True)
# --- Emergency access ---------------------------------------------------------------------
register("breakglass.granted", "Emergency access granted", sensitive=True)
register("breakglass.used", "Action taken under emergency access", sensitive=True)
register("breakglass.revoked", "Emergency access ended early", sensitive=True)
register("breakglass.expired", "Emergency access expired", sensitive=True)
# --- Files (vault) ------------------------------------------------------------------------
register("file.upload.started", "Upload started")
register("file.uploaded", "File uploaded")
register("file.version_added", "New version of a file uploaded")
register("file.upload.rejected", "Upload refused (type, size, checksum or malware)", sensitive=True)
register("file.upload.terminated", "Upload cancelled")
register("file.downloaded", "File downloaded (whole or a byte range; a de-identified copy when details say so)")
register("file.inspected", "File's size, checksum and type read without its content (HEAD)")
register("file.destroyed", "File destroyed beyond recovery (crypto-shredded)", sensitive=True)
register(
    "file.version_destroyed",
    # Until 2026-12 the routine step below was also written under this name, with the reason
    # "metadata removed on ingest"; stored events are never rewritten, so the description says so.
    'One earlier version of a file crypto-shredded (reason in details; "metadata removed on ingest" '
    "is the routine replacement of an upload by its cleaned copy)",
    sensitive=True,
)
register(
    "file.original_replaced_by_cleaned_copy",
    "Identifying metadata removed from a photo or scan as it joined a case: the cleaned copy is the "
    "file now, the uploaded original was crypto-shredded",
)
register("imaging.ingest_queued", "DICOM file or archive queued for indexing as a study")
register("imaging.ingested", "DICOM study indexed (instances stored encrypted, one per object)")
register("imaging.ingest_failed", "DICOM file or archive could not be indexed")
register("imaging.scans_viewed", "A case's 3D scans opened in the viewer")
register("imaging.study_viewed", "A CBCT/CT series opened in the viewer")
register("imaging.xrays_viewed", "A case's X-rays (panoramic, cephalometric, intraoral) opened in the viewer")
register("imaging.photos_viewed", "A case's photo gallery opened")
register("dicomweb.searched", "Imaging studies, series or instances searched (QIDO-RS)")
register("dicomweb.retrieved", "Imaging metadata, instances, frames or images retrieved (WADO-RS)")
register("dicomweb.stored", "DICOM instances sent into a case or the sender's files (STOW-RS)")
register("keys.rotated", "Key-encryption key rotated, organization keys re-wrapped", sensitive=True)
register("keys.retired", "Old key-encryption key version retired", sensitive=True)
register("keys.organization_destroyed", "Organization keys destroyed: all its files unreadable", sensitive=True)
register("keys.exported", "Installation keys exported to a passphrase-protected file", sensitive=True)

# --- Backups ------------------------------------------------------------------------------
register("backup.created", "Backup set written")
register("backup.restored", "Installation restored from a backup set", sensitive=True)
register("backup.pruned", "Backup sets older than the retention window removed", sensitive=True)
register("backup.verified", "Restore test of a backup set passed")
register("backup.verify_failed", "Restore test of a backup set failed", sensitive=True)

# --- Retention ----------------------------------------------------------------------------
register("retention.policy_set", "Retention policy set", sensitive=True)
register(
    "audit.segment_destroyed",
    "Audit archive segment crypto-shredded under every organization's retention policy",
    sensitive=True,
)
register("retention.state_rule_declared", "State dental-record rule declared", sensitive=True)
register("retention.hold_placed", "Legal hold placed", sensitive=True)
register("retention.hold_lifted", "Legal hold lifted", sensitive=True)
register("retention.postponed", "Retention enforcement postponed", sensitive=True)
register("retention.destroyed", "Records destroyed under a retention policy (certificate signed)", sensitive=True)
# --- Cases ------------------------------------------------------------------------------
register("case.created", "Case created")
register("case.updated", "Case details changed")
register("case.viewed", "Case opened")
register("case.files_downloaded", "Downloaded every file of a case as one ZIP (de-identified when details say so)")
register("deid.pixel_mask.saved", "Pixel mask for a device model saved (burned-in text blanked)", sensitive=True)
register("deid.pixel_mask.deleted", "Pixel mask for a device model deleted", sensitive=True)
register("case.deid_previewed", "Previewed what de-identification removes from a case's files before sharing")
register("case.queue.viewed", "Work queue shown on the home page (cases listed by number)")
register("case.slip.printed", "Lab slip printed (PDF with the patient name)")
register("case.submitted", "Case sent to the lab")
register("case.received", "Lab confirmed receipt")
register("case.status_changed", "Case status changed")
register("case.design.approval_requested", "Design sent for approval")
register("case.design.approved", "Design approved")
register("case.design.rejected", "Design rejected")
register("case.on_hold", "Case put on hold with a question")
register("case.completed", "Case completed")
register("case.archived", "Case archived")
register("case.cancelled", "Case cancelled by the practice (draft, or before the lab received it)", sensitive=True)
register("case.lab_access_revoked", "Practice revoked the lab's access", sensitive=True)
register("case.remake_created", "Remake created")
register("case.imaging.ordered", "Practice ordered a study from an imaging center (the center now sees the case)")
register("case.imaging.received", "Imaging center confirmed an imaging order")
register("case.imaging.delivered", "Imaging center delivered the study (its access ends after the grace period)")
register("case.imaging.cancelled", "Practice cancelled an imaging order (the center's access ended)", sensitive=True)
register("case.imaging.access_revoked", "Practice revoked an imaging center's access to a case", sensitive=True)
register("case.attachment.added", "File attached to a case")
register("case.attachment.version_added", "New version of a file of a case (metadata removed first)")
register("case.message.posted", "Message posted on a case")
register("patient.viewed", "Patient reference shown")
# --- External links (sharing) -------------------------------------------------------------
register("share.disclosures.exported", "Accounting of disclosures for a patient exported (CSV or PDF)", sensitive=True)
register("share.link.created", "External link created and e-mailed; disclosure recorded", sensitive=True)
register("share.link.revoked", "External link revoked")
register("share.link.opened", "External link opened by its recipient")
register("share.link.refused", "External link request refused (dead link or not verified)", sensitive=True)
register("share.link.locked", "External link locked after too many wrong codes", sensitive=True)
register("share.code.sent", "One-time code e-mailed to an external recipient")
register("share.code.throttled", "One-time code request or check refused by throttling", sensitive=True)
register("share.code.verified", "External recipient entered a valid one-time code")
register("share.code.failed", "External recipient entered a wrong, expired or used code", sensitive=True)
register("share.files.listed", "External recipient saw the list of shared files")
register("share.files.downloaded", "External recipient downloaded every shared file as one ZIP")
register("share.file.downloaded", "External recipient downloaded a shared file")
register("share.disclosures.viewed", "Accounting of disclosures viewed")
# --- Access decisions and the log itself --------------------------------------------------
register("access.denied", "Access refused by policy", sensitive=True)
register("audit.viewed", "Audit log viewed")
register("audit.exported", "Audit log exported", sensitive=True)
register("audit.verified", "Audit chain verified")
register("audit.archived", "Old audit events moved into a signed, encrypted archive segment")
register("audit.partition.created", "Monthly partition of the audit event table created (PostgreSQL)")
register("audit.partition.dropped", "Emptied monthly partition of the audit event table dropped after archiving")
register("alert.raised", "Alert raised by a rule (mass download, failed sign-ins, emergency access...)", sensitive=True)
register("alert.acknowledged", "Alert acknowledged with a note")
register("alert.rules_changed", "Alert rules changed")
register("audit.review.signed", "Periodic audit log review signed off")
register("audit.review.cadence_changed", "Audit review cadence changed")
register("compliance.incident.recorded", "Security incident recorded (or a tabletop exercise)", sensitive=True)
register("compliance.incident.assessed", "Incident assessed: the four factors and the breach decision", sensitive=True)
register(
    "compliance.incident.notice_sent",
    "Breach notice marked sent (individuals, HHS, media, covered entity or authority)",
)
register(
    "org.connection.baa_expired",
    "A connection's business associate agreement ended: no patient data over it until renewed",
    sensitive=True,
)
register("compliance.officers.named", "Privacy and security officers named")
register("compliance.access_review.started", "Access review started (every member, link and connection listed)")
register("compliance.access_review.decided", "Access review item kept or revoked")
register("compliance.access_review.completed", "Access review completed")
register("compliance.training.module_saved", "Training module written and assigned")
register("compliance.training.completed", "Training module taken (score and pass)")
register("compliance.incident.letter_saved", "Notification letter drafted or made final")
register("compliance.incident.letter_printed", "Notification letter printed (PDF)")
register("compliance.setup.completed", "Compliance baseline set up (every first-run step done)")
register("compliance.training.onboarding", "Training module made (or no longer) required before patient data")
register("compliance.training.attached", "Document attached to a training module")
register("compliance.training.attachment_read", "Training document downloaded", sensitive=False)
register("compliance.training.certificate", "Training certificate printed")
register("compliance.vendor.saved", "System or vendor added to the inventory or changed (BAA status and dates)")
register("compliance.risk.started", "Security risk assessment started (open risks of the last one carried over)")
register("compliance.risk.answered", "Risk assessment question answered")
register("compliance.risk.evidence_attached", "Evidence document attached to a risk assessment answer")
register("compliance.risk.evidence_read", "Risk assessment evidence downloaded", sensitive=False)
register("compliance.risk.entry_saved", "Risk register entry added or changed (score, owner, status)")
register("compliance.risk.completed", "Security risk assessment completed (answers frozen, next one due in a year)")
register("compliance.risk.report", "Security risk assessment report printed (PDF)")
register(
    "compliance.request.registered",
    "Patient's request registered (access, erasure, restriction or amendment) with its deadline",
)
register("compliance.request.extended", "Patient's request deadline extended once, with the written reason")
register(
    "compliance.request.exported", "Copy of everything held about a patient downloaded (access request)", sensitive=True
)
register(
    "compliance.request.completed",
    "Patient's request done (copy given, restriction agreed, files erased, amendment appended to the record)",
)
register("compliance.request.refused", "Patient's request refused, with the reason (officer, law or retention)")
register("compliance.request.restriction_lifted", "Patient's restriction of sharing lifted")
register(
    "compliance.request.disagreement",
    "Patient's statement of disagreement with a refused amendment recorded and appended to the record",
)
register("compliance.policy.saved", "Policy saved as a new version (earlier versions kept)")
register("compliance.policy.approved", "Policy version approved: in effect from now")
register("compliance.policy.acknowledged", "Member acknowledged the policy version in effect")
register("compliance.gdpr.profile_saved", "GDPR applicability and record of processing details saved")
register("compliance.gdpr.record_printed", "Record of processing activities (GDPR Art. 30) printed")
register("compliance.gdpr.dpia_recorded", "Data-protection impact assessment (GDPR Art. 35) recorded")
register("compliance.attestation.recorded", "Checklist item attested by a person (valid a year)")
register("compliance.attestation.report_printed", "Compliance checklist report printed for an auditor")
register("compliance.baa.drafted", "Business associate agreement drafted with the generator for a connection")
register("compliance.baa.saved", "Business associate agreement draft edited")
register("compliance.baa.finalized", "Business associate agreement made final (every 164.504(e) provision present)")
register("compliance.baa.signed", "Business associate agreement signed for one party (name, title, time)")
register("compliance.baa.completed", "Business associate agreement signed by both: signed PDF kept, connection updated")
register("compliance.baa.downloaded", "Business associate agreement downloaded (PDF or Word)")
register("compliance.baa.uploaded", "A vendor's signed business associate agreement stored in the vault")
register("compliance.baa.document_read", "A vendor's business associate agreement downloaded")
register("compliance.vendor.reassessed", "Vendor's annual reassessment recorded (result and gaps)")
register("audit.proof.given", "Merkle inclusion or consistency proof handed to an auditor")
