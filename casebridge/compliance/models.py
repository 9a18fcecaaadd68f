"""The compliance workspace beside the data (issue 16). First: security incidents and breaches
with the 4-factor risk assessment of 45 CFR 164.402 and the notification clocks that follow."""

from __future__ import annotations

import uuid

from django.conf import settings
from django.db import models
from django.utils import timezone


class Decision(models.TextChoices):
    UNDECIDED = "undecided", "Not decided yet"
    BREACH = "breach", "Breach: notification required"
    NOT_BREACH = "not_breach", "Not a breach: low probability of compromise demonstrated"


class Incident(models.Model):
    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    organization = models.ForeignKey("orgs.Organization", on_delete=models.PROTECT, related_name="incidents")
    title = models.CharField(max_length=200)
    description = models.TextField()
    discovered_at = models.DateTimeField()  # the clocks run from discovery (164.404(a)(2))
    occurred_at = models.DateTimeField(null=True, blank=True)
    systems = models.CharField(max_length=300, blank=True)
    reported_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+")
    created_at = models.DateTimeField(auto_now_add=True)
    is_exercise = models.BooleanField(default=False)  # a tabletop exercise, recorded the same way
    individuals_affected = models.PositiveIntegerField(default=0)
    most_in_one_state = models.PositiveIntegerField(default=0)  # media notice above 500 in a state
    under_gdpr = models.BooleanField(default=False)
    # A business associate tells the covered entity within the contract's deadline (at most 60 days).
    contract_deadline_days = models.PositiveIntegerField(null=True, blank=True)
    # The four factors of 164.402(2), in the assessor's words.
    factor_nature = models.TextField(blank=True)
    factor_recipient = models.TextField(blank=True)
    factor_acquired = models.TextField(blank=True)
    factor_mitigation = models.TextField(blank=True)
    decision = models.CharField(max_length=16, choices=Decision.choices, default=Decision.UNDECIDED)
    decision_rationale = models.TextField(blank=True)
    decided_at = models.DateTimeField(null=True, blank=True)
    decided_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    # When each notice went out (None: not yet), keyed by Deadline.key.
    notices = models.JSONField(default=dict, blank=True)
    closed_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-discovered_at"]

    def __str__(self) -> str:
        return f"incident {self.pk}"


class BaaStatus(models.TextChoices):
    NONE = "none", "No BAA"
    REQUESTED = "requested", "Requested"
    SIGNED = "signed", "Signed"
    EXPIRED = "expired", "Expired"
    NOT_NEEDED = "not_needed", "Not needed (no PHI)"


class Vendor(models.Model):
    """A system or vendor that touches PHI (issue 16, item 1): who owns the relationship, what
    data it handles, and its BAA with the dates that matter."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    organization = models.ForeignKey("orgs.Organization", on_delete=models.CASCADE, related_name="vendors")
    name = models.CharField(max_length=150)
    category = models.CharField(max_length=60, blank=True)  # e-mail, cloud storage, lab software...
    owner = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    data_handled = models.CharField(max_length=300, blank=True)
    baa_status = models.CharField(max_length=16, choices=BaaStatus.choices, default=BaaStatus.NONE)
    baa_signed_on = models.DateField(null=True, blank=True)
    renewal_due = models.DateField(null=True, blank=True)
    reassessment_due = models.DateField(null=True, blank=True)
    notes = models.TextField(blank=True)
    reminded_on = models.DateField(null=True, blank=True)
    # The signed agreement as uploaded, encrypted in the vault (compliance/vendors.py).
    baa_document = models.ForeignKey(
        "vault.StoredObject", null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )

    class Meta:
        ordering = ["name"]
        constraints = [models.UniqueConstraint(fields=["organization", "name"], name="vendor_name_once")]

    def __str__(self) -> str:
        return self.name


class Officers(models.Model):
    """The people the organization names as its security officer (45 CFR 164.308(a)(2)) and its
    privacy officer (164.530(a)): one person may hold both roles."""

    organization = models.OneToOneField("orgs.Organization", on_delete=models.CASCADE, related_name="officers")
    privacy_officer = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    security_officer = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    named_at = models.DateTimeField(null=True, blank=True)

    def __str__(self) -> str:
        return f"officers of {self.organization_id}"


class AccessReview(models.Model):
    """A periodic access review campaign (issue 16, item 7): an administrator confirms or revokes
    every member's role, every active external link and every connection; the outcome and how
    long revocations took are the record."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    organization = models.ForeignKey("orgs.Organization", on_delete=models.CASCADE, related_name="access_reviews")
    started_at = models.DateTimeField(auto_now_add=True)
    started_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+")
    completed_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-started_at"]

    def __str__(self) -> str:
        return f"access review {self.pk}"


class AccessReviewItem(models.Model):
    review = models.ForeignKey(AccessReview, on_delete=models.CASCADE, related_name="items")
    kind = models.CharField(max_length=16)  # member, link, connection
    ref = models.CharField(max_length=64)
    label = models.CharField(max_length=300)  # what the reviewer saw: a person and role, a link, an organization
    decision = models.CharField(max_length=8, blank=True)  # keep, revoke
    decided_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["kind", "label"]

    def __str__(self) -> str:
        return f"{self.kind} {self.ref}"


class TrainingModule(models.Model):
    """A training module written by the compliance officer (issue 16, item 5): text, a short quiz,
    the roles it is assigned to, days to complete it, and whether it is refreshed yearly."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    organization = models.ForeignKey("orgs.Organization", on_delete=models.CASCADE, related_name="training_modules")
    title = models.CharField(max_length=150)
    body = models.TextField()
    # [{"question": str, "choices": [str, ...], "answer": index}]
    quiz = models.JSONField(default=list, blank=True)
    pass_mark = models.PositiveSmallIntegerField(default=80)  # percent
    roles = models.JSONField(default=list, blank=True)  # role values; empty: everyone
    due_days = models.PositiveSmallIntegerField(default=30)
    annual = models.BooleanField(default=True)
    created_at = models.DateTimeField(auto_now_add=True)
    # Onboarding: members who join after this moment open no patient data until they pass it.
    onboarding_since = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["title"]

    def __str__(self) -> str:
        return self.title


class StoredDocument(models.Model):
    """A titled document kept encrypted in the vault beside a compliance record (a module's
    slides, a risk answer's evidence); compliance/documents.py stores and serves them."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    title = models.CharField(max_length=150)
    stored_object = models.ForeignKey("vault.StoredObject", on_delete=models.PROTECT, related_name="+")
    added_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+")
    added_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        abstract = True
        ordering = ["title"]

    def __str__(self) -> str:
        return self.title


class TrainingAttachment(StoredDocument):
    """A document that goes with a module (a policy, a slide deck)."""

    module = models.ForeignKey(TrainingModule, on_delete=models.CASCADE, related_name="attachments")


class TrainingCompletion(models.Model):
    module = models.ForeignKey(TrainingModule, on_delete=models.CASCADE, related_name="completions")
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="+")
    score = models.PositiveSmallIntegerField()
    passed = models.BooleanField()
    completed_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-completed_at"]

    def __str__(self) -> str:
        return f"{self.user_id} {self.module_id} {self.score}%"


class NotificationLetter(models.Model):
    """The draft, then final, notice for one of an incident's clocks (compliance/letters.py): its
    elements as the officer wrote them, keyed by the rule's element."""

    incident = models.ForeignKey(Incident, on_delete=models.CASCADE, related_name="letters")
    key = models.CharField(max_length=20)  # Deadline.key: individuals, hhs, media, covered_entity, authority
    sections = models.JSONField(default=dict)
    updated_at = models.DateTimeField(default=timezone.now)
    finalized_at = models.DateTimeField(null=True, blank=True)
    finalized_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )

    class Meta:
        constraints = [models.UniqueConstraint(fields=["incident", "key"], name="one_letter_per_notice")]

    def __str__(self) -> str:
        return f"{self.key} letter of {self.incident_id}"


class ComplianceSetup(models.Model):
    """The first-run set-up of one organization (compliance/wizard.py): when it was first opened
    and when every step was found done."""

    organization = models.OneToOneField("orgs.Organization", on_delete=models.CASCADE, related_name="compliance_setup")
    started_at = models.DateTimeField(default=timezone.now)
    completed_at = models.DateTimeField(null=True, blank=True)

    def __str__(self) -> str:
        return f"set-up of {self.organization_id}"


class RiskAssessment(models.Model):
    """One security risk assessment (45 CFR 164.308(a)(1)(ii)(A)), its answers, evidence and risk
    register (compliance/risk.py). Completed once a year: the next is due a year after this one."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    organization = models.ForeignKey("orgs.Organization", on_delete=models.CASCADE, related_name="risk_assessments")
    started_at = models.DateTimeField(default=timezone.now)
    started_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+")
    completed_at = models.DateTimeField(null=True, blank=True)
    completed_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    reminded_on = models.DateField(null=True, blank=True)  # the next one's due date was e-mailed

    class Meta:
        ordering = ["-started_at"]

    def __str__(self) -> str:
        return f"risk assessment {self.pk}"


class RiskAnswer(models.Model):
    """The answer to one question of compliance.risk.QUESTIONS, by hand or taken from live data
    when the assessment was completed."""

    assessment = models.ForeignKey(RiskAssessment, on_delete=models.CASCADE, related_name="answers")
    question = models.CharField(max_length=40)  # Question.key
    answer = models.CharField(max_length=8)  # yes, partly, no, na
    note = models.TextField(blank=True)
    from_live_data = models.BooleanField(default=False)
    answered_at = models.DateTimeField(default=timezone.now)
    answered_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )

    class Meta:
        constraints = [models.UniqueConstraint(fields=["assessment", "question"], name="one_answer_per_question")]

    def __str__(self) -> str:
        return f"{self.question}: {self.answer}"


class RiskEvidence(StoredDocument):
    """A document that supports an answer (a policy, a photo of a locked server room)."""

    assessment = models.ForeignKey(RiskAssessment, on_delete=models.CASCADE, related_name="evidence")
    question = models.CharField(max_length=40)


class RiskStatus(models.TextChoices):
    OPEN = "open", "Open"
    IN_PROGRESS = "in_progress", "In progress"
    DONE = "done", "Remediated"
    ACCEPTED = "accepted", "Accepted (documented decision)"


class RiskEntry(models.Model):
    """One line of the risk register (164.308(a)(1)(ii)(B)): a threat exploiting a vulnerability,
    scored likelihood x impact, with who fixes it, how and by when."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    assessment = models.ForeignKey(RiskAssessment, on_delete=models.CASCADE, related_name="entries")
    threat = models.CharField(max_length=200)
    vulnerability = models.CharField(max_length=300)
    likelihood = models.PositiveSmallIntegerField()  # 1-5
    impact = models.PositiveSmallIntegerField()  # 1-5
    owner = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    remediation = models.TextField(blank=True)
    due_on = models.DateField(null=True, blank=True)
    status = models.CharField(max_length=12, choices=RiskStatus.choices, default=RiskStatus.OPEN)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["created_at"]

    def __str__(self) -> str:
        return f"risk {self.pk}"

    @property
    def score(self) -> int:
        return self.likelihood * self.impact


class RequestKind(models.TextChoices):
    ACCESS = "access", "Access: a copy of everything held"
    ERASURE = "erasure", "Erasure"
    RESTRICTION = "restriction", "Restriction of sharing"
    AMENDMENT = "amendment", "Amendment: correct the record"


class RequestStatus(models.TextChoices):
    OPEN = "open", "Open"
    EXTENDED = "extended", "Open, deadline extended"
    COMPLETED = "completed", "Done"
    REFUSED = "refused", "Refused"


class SubjectRequest(models.Model):
    """A patient's request about their own data (compliance/subject_requests.py): a copy of it
    (HIPAA 164.524, GDPR Art. 15), its erasure (GDPR Art. 17), a restriction of its sharing
    (HIPAA 164.522(a), GDPR Art. 18) or an amendment (HIPAA 164.526, GDPR Art. 16), with the
    deadline the law sets and the decision with its reason. A restriction in effect (done, not
    lifted) stops new sharing of the patient's cases (access/policy.py)."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    organization = models.ForeignKey("orgs.Organization", on_delete=models.PROTECT, related_name="subject_requests")
    patient = models.ForeignKey("cases.Patient", on_delete=models.PROTECT, related_name="subject_requests")
    kind = models.CharField(max_length=16, choices=RequestKind.choices)
    received_on = models.DateField()  # the deadlines run from receipt (164.524(b)(2), Art. 12(3))
    under_gdpr = models.BooleanField(default=False)
    status = models.CharField(max_length=16, choices=RequestStatus.choices, default=RequestStatus.OPEN)
    extension_reason = models.TextField(blank=True)  # the written statement 164.524(b)(2)(ii) asks for
    extended_at = models.DateTimeField(null=True, blank=True)
    decision_reason = models.TextField(blank=True)
    decided_at = models.DateTimeField(null=True, blank=True)
    decided_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    lifted_at = models.DateTimeField(null=True, blank=True)  # a restriction ended
    # An amendment refused: the patient's statement of disagreement (164.526(d)(1)(iii)), appended
    # to the record with the request and the refusal.
    disagreement = models.TextField(blank=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-received_on", "-created_at"]
        indexes = [models.Index(fields=["patient", "kind", "status"], name="compliance_request_patient")]

    def __str__(self) -> str:
        return f"{self.kind} request {self.pk}"


class PolicyKind(models.TextChoices):
    FILE_SHARING = "file-sharing", "File-sharing policy"
    RETENTION = "retention", "Retention policy"
    INCIDENT_RESPONSE = "incident-response", "Incident response plan"
    SANCTIONS = "sanctions", "Sanctions policy"
    DEVICE_MEDIA = "device-media", "Device and media policy"
    ACCESS_MANAGEMENT = "access-management", "Access management policy"


class Policy(models.Model):
    """One of the organization's written policies (45 CFR 164.316(a), 164.530(i)): its text lives in
    versions, each save a new one; none is deleted by hand (kept 6 years after it was last in
    effect, 164.316(b)(2)(i); retention/compliance_records.py then removes a replaced one)."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    organization = models.ForeignKey("orgs.Organization", on_delete=models.CASCADE, related_name="policies")
    kind = models.CharField(max_length=24, choices=PolicyKind.choices)

    class Meta:
        ordering = ["kind"]
        constraints = [models.UniqueConstraint(fields=["organization", "kind"], name="one_policy_per_kind")]

    def __str__(self) -> str:
        return self.kind


class PolicyVersion(models.Model):
    """A saved text of a policy; in effect once approved, until a later version is approved."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    policy = models.ForeignKey(Policy, on_delete=models.PROTECT, related_name="versions")
    number = models.PositiveIntegerField()
    body = models.TextField()
    saved_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+")
    saved_at = models.DateTimeField(default=timezone.now)
    approved_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    approved_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-number"]
        constraints = [models.UniqueConstraint(fields=["policy", "number"], name="policy_version_number_once")]

    def __str__(self) -> str:
        return f"{self.policy_id} v{self.number}"


class PolicyAcknowledgement(models.Model):
    """A member's statement that they read an approved version (45 CFR 164.308(a)(5), 164.530(b))."""

    version = models.ForeignKey(PolicyVersion, on_delete=models.PROTECT, related_name="acknowledgements")
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="+")
    acknowledged_at = models.DateTimeField(default=timezone.now)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["version", "user"], name="acknowledged_once")]

    def __str__(self) -> str:
        return f"{self.user_id} read {self.version_id}"


class Attestation(models.Model):
    """A person's statement that a checklist item CaseBridge cannot see is in place, with a note;
    valid for a year. Every attestation is kept (the newest counts)."""

    organization = models.ForeignKey("orgs.Organization", on_delete=models.CASCADE, related_name="attestations")
    item = models.CharField(max_length=40)  # the checklist item's key
    note = models.TextField()
    attested_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+")
    attested_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["-attested_at", "-pk"]

    def __str__(self) -> str:
        return f"{self.item} attested {self.attested_at:%Y-%m-%d}"


class GdprProfile(models.Model):
    """Whether the organization processes personal data under the GDPR, and what the record of
    processing activities (Art. 30(1)) needs beyond what CaseBridge already knows."""

    organization = models.OneToOneField("orgs.Organization", on_delete=models.CASCADE, related_name="gdpr")
    applies = models.BooleanField(default=False)
    contact = models.CharField(max_length=300, blank=True)  # controller's representative / DPO, Art. 30(1)(a)
    transfers = models.TextField(blank=True)  # transfers to third countries and safeguards, Art. 30(1)(e)
    updated_at = models.DateTimeField(default=timezone.now)

    def __str__(self) -> str:
        return f"GDPR profile of {self.organization_id}"


class ImpactAssessment(models.Model):
    """A data-protection impact assessment (GDPR Art. 35(7)): the processing, its necessity, the
    risks, the measures, and the data protection officer's advice (Art. 35(2))."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    organization = models.ForeignKey("orgs.Organization", on_delete=models.CASCADE, related_name="impact_assessments")
    title = models.CharField(max_length=200)
    description = models.TextField()
    necessity = models.TextField()
    risks = models.TextField()
    measures = models.TextField()
    dpo_opinion = models.TextField(blank=True)
    recorded_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+")
    recorded_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["-recorded_at"]

    def __str__(self) -> str:
        return self.title


class BaaDocument(models.Model):
    """A business associate agreement drafted with the generator (compliance/baa.py) for one
    connection: the sections as edited, the contractual reporting deadline, final, then signed by
    both sides; the signed PDF is kept in the vault."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    organization = models.ForeignKey("orgs.Organization", on_delete=models.CASCADE, related_name="baa_drafts")
    # Between the two sides of a connection, or between the organization and one of its vendors
    # (who signs outside CaseBridge: its countersigned copy is uploaded on the vendor's page).
    connection = models.ForeignKey(
        "orgs.Connection", null=True, blank=True, on_delete=models.CASCADE, related_name="baa_documents"
    )
    vendor = models.ForeignKey(Vendor, null=True, blank=True, on_delete=models.CASCADE, related_name="baa_documents")
    covered_entity = models.ForeignKey("orgs.Organization", on_delete=models.CASCADE, related_name="+")
    business_associate = models.ForeignKey(
        "orgs.Organization", null=True, blank=True, on_delete=models.CASCADE, related_name="+"
    )
    sections = models.JSONField(default=dict)
    report_days = models.PositiveSmallIntegerField(default=10)
    expires_on = models.DateField(null=True, blank=True)
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+")
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(default=timezone.now)
    finalized_at = models.DateTimeField(null=True, blank=True)
    finalized_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    signed_at = models.DateTimeField(null=True, blank=True)
    signed_pdf = models.ForeignKey(
        "vault.StoredObject", null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )

    class Meta:
        ordering = ["-created_at"]
        constraints = [
            models.CheckConstraint(
                condition=models.Q(connection__isnull=False, vendor__isnull=True)
                | models.Q(connection__isnull=True, vendor__isnull=False),
                name="baa_connection_or_vendor",
            )
        ]

    def __str__(self) -> str:
        return f"BAA {self.pk}"

    @property
    def business_associate_name(self) -> str:
        return self.business_associate.name if self.business_associate else self.vendor.name if self.vendor else ""


class BaaSignature(models.Model):
    """One party's signature: who, with the name and title they typed, when (after confirming
    their identity again)."""

    document = models.ForeignKey(BaaDocument, on_delete=models.CASCADE, related_name="signatures")
    party = models.CharField(max_length=20)  # covered_entity, business_associate
    organization = models.ForeignKey("orgs.Organization", on_delete=models.CASCADE, related_name="+")
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")
    name = models.CharField(max_length=150)
    title = models.CharField(max_length=150)
    signed_at = models.DateTimeField()

    class Meta:
        ordering = ["signed_at"]
        constraints = [models.UniqueConstraint(fields=["document", "party"], name="baa_one_signature_per_party")]

    def __str__(self) -> str:
        return f"{self.party} signature of {self.document_id}"


class VendorReassessment(models.Model):
    """The annual reassessment of a vendor (issue 16, item 1): the questionnaire's answers, what
    falls short, the result and when."""

    vendor = models.ForeignKey(Vendor, on_delete=models.CASCADE, related_name="reassessments")
    answers = models.JSONField(default=dict)  # question key -> bool
    breach_notes = models.TextField(blank=True)
    gaps = models.JSONField(default=list)  # question keys answered the wrong way
    result = models.CharField(max_length=16)  # satisfactory, follow_up
    assessed_at = models.DateTimeField(default=timezone.now)
    assessed_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+")

    class Meta:
        ordering = ["-assessed_at"]

    def __str__(self) -> str:
        return f"reassessment of {self.vendor_id}"
