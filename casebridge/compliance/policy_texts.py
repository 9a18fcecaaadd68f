# ruff: noqa: E501  (prose: one paragraph a line, as it is shown and edited)
"""The ready-written starting texts of the six policies (compliance/policies.py): plain words, each
citing the rules it serves. "{org}" becomes the organization's name."""

from __future__ import annotations

from casebridge.compliance.models import PolicyKind

TEMPLATES = {
    PolicyKind.FILE_SHARING: """File-sharing policy of {org}
Serves: 45 CFR 164.308(a)(4) (information access management), 164.312(a), (b), (e) (access control, audit controls, transmission security), 164.502(b) (minimum necessary), 164.502(e) (business associates).

1. Channel. Patient files (scans, photographs, prescriptions, CBCT) are exchanged with laboratories and other providers through CaseBridge only. Ordinary e-mail attachments, messaging apps and consumer cloud links are not used for patient data.
2. Minimum necessary. Send only what the case needs: patient reference, teeth, prescription, scans, shade and photographs. No insurance documents or unrelated clinical notes.
3. File names. File names carry no patient names or dates of birth; the case identifies the patient.
4. External links. A link to someone outside CaseBridge is sent only for a stated purpose, to a named recipient, with an expiry; it is revoked when no longer needed.
5. Agreements. Patient data goes only to a vendor with a signed business associate agreement, and to other providers for treatment.
6. Records. CaseBridge records who viewed, downloaded and shared each file; these records are reviewed monthly and kept at least six years.
""",
    PolicyKind.RETENTION: """Retention policy of {org}
Serves: 45 CFR 164.316(b)(2) and 164.530(j) (documentation kept six years from creation or last effective date, whichever is later), 164.310(d)(2)(i) (disposal). State law on dental records may require longer.

1. Compliance documentation (policies and their versions, risk assessments, training records, agreements, incident records, access reviews, audit log) is kept at least six years from when it was created or last in effect.
2. Case files and patient records are kept for the period the state's dental-records rules require; the period is set in CaseBridge's retention settings, and a legal hold stops deletion.
3. At the end of the period, records are destroyed so they cannot be read or reconstructed; destruction is recorded.
4. Under the GDPR, personal data is kept no longer than the purpose requires (Art. 5(1)(e)); this policy states that period where it applies.
""",
    PolicyKind.INCIDENT_RESPONSE: """Incident response plan of {org}
Serves: 45 CFR 164.308(a)(6) (security incident procedures), 164.400-414 (breach notification); GDPR Art. 33-34 where it applies.

1. Report. Anyone who suspects patient data was lost, stolen, sent to the wrong person or seen by someone who should not have seen it tells the privacy or security officer the same day.
2. Record. The officer records the incident in CaseBridge with the date of discovery: the notification clocks run from discovery.
3. Contain. Revoke links and access, change passwords, ask a wrong recipient to delete and confirm.
4. Assess. The officer assesses the four factors of 164.402(2): the data involved, who received it, whether it was actually acquired or viewed, and how far the risk was mitigated; the decision (breach or not) is documented.
5. Notify. For a breach: the individuals without unreasonable delay and within 60 days of discovery; HHS (within 60 days if 500 or more, otherwise in the yearly log); the media if more than 500 residents of a state; a business associate tells the covered entity within the agreement's deadline; under the GDPR, the supervisory authority within 72 hours.
6. Learn. Tabletop exercises (lost device, wrong recipient) are held at least yearly and recorded the same way.
""",
    PolicyKind.SANCTIONS: """Sanctions policy of {org}
Serves: 45 CFR 164.308(a)(1)(ii)(C) (sanction policy, Security Rule) and 164.530(e) (sanctions, Privacy Rule).

1. Workforce members who do not follow the privacy and security policies are sanctioned. Sanctions are applied fairly and in proportion to the seriousness, intent and repetition of the failure.
2. Sanctions range from retraining and a written warning to suspension of access and termination of employment or contract.
3. No sanction is applied to anyone for filing a complaint, reporting a suspected violation in good faith, or taking part in an investigation (164.530(g)).
4. Each sanction applied is documented (who, when, what policy, what sanction) and the record kept six years (164.530(e)(2)).
""",
    PolicyKind.DEVICE_MEDIA: """Device and media policy of {org}
Serves: 45 CFR 164.310(c) (workstation security) and 164.310(d) (device and media controls: disposal, re-use, accountability, backup).

1. Patient data is opened on work devices that lock automatically and whose disks are encrypted.
2. Patient data is not copied to USB drives, personal phones or personal cloud storage; CaseBridge is the place where files are kept.
3. Before a device or medium is re-used or disposed of, its data is removed so it cannot be recovered (wiped or physically destroyed); the disposal is recorded (164.310(d)(2)(i)-(ii)).
4. A record is kept of the devices that hold patient data and who is responsible for each (164.310(d)(2)(iii)).
5. A lost or stolen device is reported at once under the incident response plan.
""",
    PolicyKind.ACCESS_MANAGEMENT: """Access management policy of {org}
Serves: 45 CFR 164.308(a)(3) (workforce security, termination procedures), 164.308(a)(4) (information access management), 164.312(a) (access control, unique user identification), 164.312(d) (person authentication).

1. Every person has their own account; accounts are never shared. Every account uses a second factor.
2. Access is granted by role, to the minimum the job needs, by an administrator.
3. When someone leaves or changes role, their access is removed or changed the same day.
4. Access is reviewed at least quarterly: every member's role, every external link and every connection is confirmed or revoked, and the review recorded.
5. Emergency access is granted only for a stated reason, for a limited time, and is reviewed afterwards.
""",
}
