"""DICOMweb (DICOM PS3.18) at /dicomweb/: QIDO-RS search and WADO-RS retrieval of the studies a
caller may see, under the same policy and audit as every other door.

- QIDO-RS: /studies, /studies/{study}/series, /studies/{study}/series/{series}/instances, with
  the standard matching keys, `limit`/`offset` and `includefield`. Keys that name the patient
  (PatientName, PatientID, PatientBirthDate) are refused: they would carry patient data in a URL.
  Search by AccessionNumber, which is the case number.
- WADO-RS: series and instance metadata (DICOM JSON, pixel data as a BulkDataURI), instances
  of a study, series or one instance (multipart/related; type="application/dicom"), frames
  (multipart/related; type="application/octet-stream", in the instance's own transfer syntax) and
  rendered images (PNG or JPEG) of an instance or a frame.
- STOW-RS: POST multipart/related; type="application/dicom" to /cases/{number}/studies (or
  .../studies/{study}) adds the instances to that case, through the case's attach pipeline; to
  /studies (or /studies/{study}) they become the sender's own uploads, in their files
  (imaging/stow.py). The answer is the Store Instances Response Module in DICOM JSON.

A study is visible exactly when its case is (policy.visible_studies); anything else is 404,
the same answer as "no such study". A study of a case the caller's organization received with
De-identification on receipt (policy.deidentified_studies) is served de-identified: attributes
after the on-receipt profile, the case's de-identified UIDs (the only ones it answers to), pixel
data as stored (View below; docs/deid.md). Bearer tokens need `cases:read` to search and retrieve and
`cases:write` to store; a browser session (with MFA, and its CSRF token for a store) works too.
"""

from __future__ import annotations

import io
import json
import re
import uuid
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np
import pydicom
from django.conf import settings
from django.core.cache import cache
from django.core.exceptions import ValidationError
from django.db.models import Count, QuerySet
from django.http import Http404, HttpRequest, HttpResponse, StreamingHttpResponse
from django.http.response import HttpResponseBase
from django.urls import reverse
from ninja.errors import HttpError
from pydicom.dataelem import RawDataElement
from pydicom.uid import ExplicitVRLittleEndian, ImplicitVRLittleEndian

from casebridge.access import policy
from casebridge.access.requests import principal_of
from casebridge.access.roles import Perm
from casebridge.api.auth import api_actor, problem
from casebridge.api.cases import NUMBER, caller_access
from casebridge.audit.api import record
from casebridge.cases import actions as case_actions
from casebridge.cases.models import Case
from casebridge.deid import export as deid_export
from casebridge.deid.dicom import METHOD_NAME, Refused, deidentify, new_uid
from casebridge.imaging import metadata, stow
from casebridge.imaging.models import Instance, Series, Study
from casebridge.kernel.multipart import MultipartError, MultipartReader, media_type_parameters
from casebridge.vault import api as vault
from casebridge.vault.http import stream_plaintext
from casebridge.vault.models import ObjectVersion
from casebridge.vault.reader import VersionReader

DICOM_JSON = "application/dicom+json"
UID = re.compile(r"^[0-9]+(\.[0-9]+)*$")
MAX_LIMIT = 1000
DEFAULT_LIMIT = 100
# Keys that identify the patient: matching on them would put patient data in URLs and logs.
PATIENT_KEYS = {"patientname", "00100010", "patientid", "00100020", "patientbirthdate", "00100030"}
NATIVE_SYNTAXES = {ExplicitVRLittleEndian, ImplicitVRLittleEndian}
# Retrieval of frames is audited once per person, series and this many seconds: a viewer
# fetching 500 slices is one look at the series, not 500 events.
FRAME_AUDIT_WINDOW = 600
PIXEL_DATA = 0x7FE00010
DEFER_PIXELS = 4096  # elements larger than this are skipped while a header is read for frames


class BadRequest(ValueError):
    pass


# --- access ---------------------------------------------------------------------------------
@dataclass(frozen=True)
class View:
    """How the caller gets one study, as the policy decides: as stored, or (an organization with
    De-identification on receipt, policy.deidentified_studies) de-identified by the on-receipt
    profile with the case's de-identified UIDs, which are then the only UIDs it is known by."""

    secret: bytes | None = None

    @property
    def deidentified(self) -> bool:
        return self.secret is not None

    def uid(self, original: str) -> str:
        return original if self.secret is None else new_uid(original, self.secret)


AS_STORED = View()
_VIEW = "_dicomweb_view"


def view_of(study: Study) -> View:
    view: View = vars(study).get(_VIEW, AS_STORED)
    return view


def _with_view(study: Study, view: View) -> Study:
    vars(study)[_VIEW] = view  # for this request's handlers only: not a field of the model
    return study


def _deidentified_view(case_id: Any) -> View:
    return View(deid_export.case_secret(Case(pk=case_id)))


def view_for(principal: Any, case: Case) -> View:
    """The UIDs a viewer page gives its DICOMweb requests for `case`: the de-identified ones when
    the principal gets the case de-identified (policy.originals_withheld, as for its downloads)."""
    return _deidentified_view(case.pk) if policy.originals_withheld(principal, case) else AS_STORED


def _stored(request: HttpRequest) -> QuerySet[Study]:
    principal = principal_of(request)
    if principal is None:
        return Study.objects.none()
    return policy.stored_studies(principal).select_related("case", "case__patient")


def _deidentified(request: HttpRequest) -> QuerySet[Study]:
    principal = principal_of(request)
    if principal is None:
        return Study.objects.none()
    return policy.deidentified_studies(principal).select_related("case", "case__patient")


def _hint_key(uid: str) -> str:
    return f"dicomweb-deid-study:{uid}"


def _deidentified_study(request: HttpRequest, study_uid: str) -> Study | None:
    """The study the caller gets de-identified whose de-identified Study Instance UID is
    `study_uid`. The UIDs are one-way (HMAC of the case secret): the caller's studies are mapped
    until one matches; the cache only remembers which study matched last time (a hint, checked
    again against the policy and the mapping: a viewer asks for hundreds of frames)."""
    candidates = _deidentified(request)
    hint = cache.get(_hint_key(study_uid))
    if hint is not None:
        study = candidates.filter(pk=hint).first()
        if study is not None and _deidentified_view(study.case_id).uid(study.study_uid) == study_uid:
            return _with_view(study, _deidentified_view(study.case_id))
    for pk, original, case_id in candidates.values_list("pk", "study_uid", "case_id").iterator():
        view = _deidentified_view(case_id)
        if view.uid(original) == study_uid:
            cache.set(_hint_key(study_uid), pk, FRAME_AUDIT_WINDOW)
            study = candidates.get(pk=pk)
            return _with_view(study, view)
    return None


def _study(request: HttpRequest, study_uid: str) -> Study | None:
    """A study by the UID the caller knows it by: its own for a study it gets as stored, the
    de-identified one for a study it gets de-identified (its original UID is no such study)."""
    if not UID.match(study_uid):
        return None
    found = _stored(request).filter(study_uid=study_uid).first()
    return found if found is not None else _deidentified_study(request, study_uid)


def _series_of(study: Study, series_uid: str) -> Series | None:
    view = view_of(study)
    series: Series | None
    if view.deidentified:
        series = next((s for s in study.series.all() if view.uid(s.series_uid) == series_uid), None)
    else:
        series = study.series.filter(series_uid=series_uid).first()
    if series is not None:
        series.study = study  # its view with it
    return series


def _series(request: HttpRequest, study_uid: str, series_uid: str) -> Series | None:
    if not (UID.match(study_uid) and UID.match(series_uid)):
        return None
    found = (
        Series.objects.filter(
            study__in=_stored(request).values("pk"), study__study_uid=study_uid, series_uid=series_uid
        )
        .select_related("study__case__patient")
        .order_by()[:1]
    )
    series = next(iter(found), None)
    if series is not None:
        return series
    study = _deidentified_study(request, study_uid)
    return _series_of(study, series_uid) if study is not None else None


def _instance(request: HttpRequest, study_uid: str, series_uid: str, sop_uid: str) -> Instance | None:
    # One query as stored: a viewer asks for hundreds of frames, each through here.
    if not (UID.match(study_uid) and UID.match(series_uid) and UID.match(sop_uid)):
        return None
    found = (
        Instance.objects.filter(
            series__study__in=_stored(request).values("pk"),
            series__study__study_uid=study_uid,
            series__series_uid=series_uid,
            sop_instance_uid=sop_uid,
        )
        .select_related("stored_object", "series__study__case__patient")
        .order_by()[:1]
    )
    instance = next(iter(found), None)
    if instance is not None:
        return instance
    study = _deidentified_study(request, study_uid)
    series = _series_of(study, series_uid) if study is not None else None
    if series is None:
        return None
    view = view_of(series.study)
    pk = next(
        (pk for pk, uid in series.instances.values_list("pk", "sop_instance_uid") if view.uid(uid) == sop_uid), None
    )
    if pk is None:
        return None
    instance = series.instances.select_related("stored_object").get(pk=pk)
    instance.series = series
    return instance


def _not_found() -> HttpResponseBase:
    return problem(404, "Not Found", "No such study, series or instance.")


def _actor(request: HttpRequest) -> Any:
    principal = principal_of(request)
    assert principal is not None  # api_actor: someone signed in or sent a token
    return principal.actor


def _audit(request: HttpRequest, action: str, study: Study, **details: Any) -> None:
    case = study.case
    record(
        action,
        actor=_actor(request),
        organization=study.organization_id,
        target=case,
        patient_ref=str(case.patient_id) if case is not None else "",
        details={
            "case": case.number if case is not None else "",
            "study": str(study.pk),
            **details,
            **(_ON_RECEIPT if view_of(study).deidentified else {}),
        },
    )


# What the audit events of a de-identified view add, as the on-receipt downloads' events do.
_ON_RECEIPT = {
    "deidentified": True,
    "profile": METHOD_NAME,
    "options": deid_export.option_names(deid_export.ON_RECEIPT),
    "on_receipt": True,
}


# --- DICOM JSON -----------------------------------------------------------------------------
def _attr(vr: str, *values: Any) -> dict[str, Any]:
    clean = [v for v in values if v not in (None, "")]
    return {"vr": vr, "Value": clean} if clean else {"vr": vr}


def _json(payload: list[dict[str, Any]]) -> HttpResponse:
    response = HttpResponse(json.dumps(payload), content_type=DICOM_JSON)
    response["Cache-Control"] = "no-store"
    return response


def _page(request: HttpRequest) -> tuple[int, int]:
    try:
        limit = int(request.GET.get("limit", DEFAULT_LIMIT))
        offset = int(request.GET.get("offset", 0))
    except ValueError:
        raise BadRequest("limit and offset must be whole numbers") from None
    if limit < 1 or offset < 0:
        raise BadRequest("limit must be 1 or more and offset 0 or more")
    return min(limit, MAX_LIMIT), offset


def _keys(request: HttpRequest, allowed: dict[str, str]) -> dict[str, str]:
    """The matching keys of a QIDO query, by keyword; unknown keys are an error, not ignored."""
    found: dict[str, str] = {}
    for key in request.GET:
        value = request.GET.get(key) or ""
        lowered = key.lower()
        if lowered in ("limit", "offset", "includefield", "fuzzymatching"):
            continue
        if lowered in PATIENT_KEYS:
            raise BadRequest(
                "Searching by patient is not offered: it would put patient data in the URL. "
                "Search by AccessionNumber (the case number)."
            )
        keyword = allowed.get(lowered)
        if keyword is None:
            known = ", ".join(sorted(set(allowed.values())))
            raise BadRequest(f"{key} is not a matching key here; use one of {known}")
        found[keyword] = value
    return found


def _date_range(value: str) -> tuple[str, str]:
    if not re.fullmatch(r"\d{8}|\d{8}-|-\d{8}|\d{8}-\d{8}", value):
        raise BadRequest("StudyDate is YYYYMMDD or a range YYYYMMDD-YYYYMMDD")
    if "-" not in value:
        return value, value
    low, high = value.split("-")
    return low, high


def _iso(value: str) -> str:
    return f"{value[:4]}-{value[4:6]}-{value[6:]}"


def _study_json(study: Study) -> dict[str, Any]:
    case = study.case
    modalities = sorted({s.modality for s in study.series.all()})
    view = view_of(study)
    if view.deidentified:
        # The Basic Profile: Study Date, Accession Number and Patient's Name are Z (kept empty).
        return {
            "0020000D": _attr("UI", view.uid(study.study_uid)),
            "00080020": _attr("DA"),
            "00080050": _attr("SH"),
            "00080061": _attr("CS", *modalities),
            "00100010": _attr("PN"),
            "00201206": _attr("IS", getattr(study, "series_total", None)),
            "00201208": _attr("IS", getattr(study, "instance_total", None)),
        }
    return {
        "0020000D": _attr("UI", study.study_uid),
        "00080020": _attr("DA", study.study_date.strftime("%Y%m%d") if study.study_date else None),
        "00080050": _attr("SH", case.number if case is not None else None),
        "00080061": _attr("CS", *modalities),
        "00100010": _attr("PN", {"Alphabetic": case.patient.name} if case is not None else None),
        "00201206": _attr("IS", getattr(study, "series_total", None)),
        "00201208": _attr("IS", getattr(study, "instance_total", None)),
    }


def _series_json(series: Series) -> dict[str, Any]:
    view = view_of(series.study)
    return {
        "0020000D": _attr("UI", view.uid(series.study.study_uid)),
        "0020000E": _attr("UI", view.uid(series.series_uid)),
        "00080060": _attr("CS", series.modality),
        "00200011": _attr("IS", series.series_number),
        "00201209": _attr("IS", series.instance_count),
    }


def _instance_json(instance: Instance) -> dict[str, Any]:
    series = instance.series
    view = view_of(series.study)
    return {
        "0020000D": _attr("UI", view.uid(series.study.study_uid)),
        "0020000E": _attr("UI", view.uid(series.series_uid)),
        "00080016": _attr("UI", instance.sop_class_uid),
        "00080018": _attr("UI", view.uid(instance.sop_instance_uid)),
        "00200013": _attr("IS", instance.instance_number),
        "00280008": _attr("IS", instance.frames),
        "00280010": _attr("US", series.rows),
        "00280011": _attr("US", series.columns),
        "00083002": _attr("UI", series.transfer_syntax),
    }


# --- QIDO-RS --------------------------------------------------------------------------------
STUDY_KEYS = {
    "studyinstanceuid": "StudyInstanceUID",
    "0020000d": "StudyInstanceUID",
    "accessionnumber": "AccessionNumber",
    "00080050": "AccessionNumber",
    "studydate": "StudyDate",
    "00080020": "StudyDate",
    "modalitiesinstudy": "ModalitiesInStudy",
    "00080061": "ModalitiesInStudy",
}
SERIES_KEYS = {
    "seriesinstanceuid": "SeriesInstanceUID",
    "0020000e": "SeriesInstanceUID",
    "modality": "Modality",
    "00080060": "Modality",
    "seriesnumber": "SeriesNumber",
    "00200011": "SeriesNumber",
}
INSTANCE_KEYS = {
    "sopinstanceuid": "SOPInstanceUID",
    "00080018": "SOPInstanceUID",
    "instancenumber": "InstanceNumber",
    "00200013": "InstanceNumber",
}


def _int_key(value: str, name: str) -> int:
    try:
        return int(value)
    except ValueError:
        raise BadRequest(f"{name} must be a whole number") from None


def search_studies(request: HttpRequest) -> HttpResponseBase:
    keys = _keys(request, STUDY_KEYS)
    limit, offset = _page(request)
    principal = principal_of(request)
    if principal is None:
        return _json([])
    studies = policy.visible_studies(principal).select_related("case", "case__patient")
    # Studies seen de-identified match on their de-identified attributes: their UIDs as mapped,
    # and no Accession Number or Study Date (the profile empties both).
    seen_deidentified = list(_deidentified(request).values_list("pk", "study_uid", "case_id"))
    deidentified = {pk: case_id for pk, _original, case_id in seen_deidentified}
    if "StudyInstanceUID" in keys:
        wanted = set(keys["StudyInstanceUID"].split(","))
        matching = set(_stored(request).filter(study_uid__in=wanted).values_list("pk", flat=True))
        matching |= {
            pk for pk, original, case_id in seen_deidentified if _deidentified_view(case_id).uid(original) in wanted
        }
        studies = studies.filter(pk__in=matching)
    if "AccessionNumber" in keys:
        studies = studies.filter(case__number=keys["AccessionNumber"]).exclude(pk__in=list(deidentified))
    if "StudyDate" in keys:
        low, high = _date_range(keys["StudyDate"])
        studies = studies.exclude(pk__in=list(deidentified)).filter(
            **({"study_date__gte": _iso(low)} if low else {}), **({"study_date__lte": _iso(high)} if high else {})
        )
    if "ModalitiesInStudy" in keys:
        studies = studies.filter(series__modality=keys["ModalitiesInStudy"].upper())
    studies = (
        studies.annotate(series_total=Count("series", distinct=True), instance_total=Count("series__instances"))
        .prefetch_related("series")
        .order_by("-study_date", "-created_at")
    )
    page = [
        _with_view(s, _deidentified_view(deidentified[s.pk])) if s.pk in deidentified else s
        for s in studies[offset : offset + limit]
    ]
    for study in {s.pk: s for s in page}.values():
        _audit(request, "dicomweb.searched", study, level="study")
    return _json([_study_json(s) for s in page])


def search_series(request: HttpRequest, study_uid: str) -> HttpResponseBase:
    study = _study(request, study_uid)
    if study is None:
        return _not_found()
    keys = _keys(request, SERIES_KEYS)
    limit, offset = _page(request)
    series = study.series.all()
    view = view_of(study)
    if "SeriesInstanceUID" in keys:
        wanted = set(keys["SeriesInstanceUID"].split(","))
        series = series.filter(pk__in=[s.pk for s in series if view.uid(s.series_uid) in wanted])
    if "Modality" in keys:
        series = series.filter(modality=keys["Modality"].upper())
    if "SeriesNumber" in keys:
        series = series.filter(series_number=_int_key(keys["SeriesNumber"], "SeriesNumber"))
    _audit(request, "dicomweb.searched", study, level="series")
    found = list(series[offset : offset + limit])
    for s in found:
        s.study = study  # its view with it
    return _json([_series_json(s) for s in found])


def search_instances(request: HttpRequest, study_uid: str, series_uid: str) -> HttpResponseBase:
    series = _series(request, study_uid, series_uid)
    if series is None:
        return _not_found()
    keys = _keys(request, INSTANCE_KEYS)
    limit, offset = _page(request)
    instances = series.instances.all()
    view = view_of(series.study)
    if "SOPInstanceUID" in keys:
        wanted = set(keys["SOPInstanceUID"].split(","))
        instances = instances.filter(
            pk__in=[pk for pk, uid in instances.values_list("pk", "sop_instance_uid") if view.uid(uid) in wanted]
        )
    if "InstanceNumber" in keys:
        instances = instances.filter(instance_number=_int_key(keys["InstanceNumber"], "InstanceNumber"))
    _audit(request, "dicomweb.searched", series.study, level="instance", series=series.series_uid)
    found = list(instances[offset : offset + limit])
    for i in found:
        i.series = series  # its view with it
    return _json([_instance_json(i) for i in found])


# --- WADO-RS --------------------------------------------------------------------------------
def _dataset(instance: Instance, *, pixels: bool, version: ObjectVersion | None = None) -> pydicom.Dataset:
    reader = io.BufferedReader(VersionReader(version or vault.get_version(instance.stored_object)), 1 << 16)
    return pydicom.dcmread(reader, stop_before_pixels=not pixels)


def _frames_uri(request: HttpRequest, instance: Instance) -> str:
    series = instance.series
    view = view_of(series.study)
    frames = ",".join(str(n) for n in range(1, instance.frames + 1))
    uids = [view.uid(series.study.study_uid), view.uid(series.series_uid), view.uid(instance.sop_instance_uid)]
    return request.build_absolute_uri(reverse("dicomweb_frames", args=[*uids, frames]))


# Not attributes of the instance: what the header document adds (imaging/metadata.py).
_ADDED = ("00083002", "7FE00010")


def deidentified_header(meta: dict[str, Any], view: View) -> dict[str, Any] | None:
    """An instance's DICOM JSON header as the de-identified copy of the instance has it: the
    on-receipt profile and options applied by the engine (the same call as the downloads), the
    case's de-identified UIDs. None when the engine refuses the instance (it is then withheld)."""
    assert view.secret is not None
    header = {tag: value for tag, value in meta.items() if tag not in _ADDED}
    try:
        result = deidentify(pydicom.Dataset.from_json(header), deid_export.ON_RECEIPT, view.secret)
    except Refused:
        return None
    out: dict[str, Any] = result.dataset.to_json_dict(bulk_data_threshold=1 << 30)
    out.update({tag: meta[tag] for tag in _ADDED if tag in meta})  # pixels and their syntax unchanged
    return out


def _header(instance: Instance, meta: dict[str, Any]) -> dict[str, Any] | None:
    view = view_of(instance.series.study)
    return deidentified_header(meta, view) if view.deidentified else meta


def _metadata(request: HttpRequest, instance: Instance, version: ObjectVersion | None = None) -> dict[str, Any] | None:
    meta = _header(instance, metadata.header_json(instance, version))
    if meta is not None:
        meta["7FE00010"] = {**meta["7FE00010"], "BulkDataURI": _frames_uri(request, instance)}
    return meta


def series_metadata(request: HttpRequest, study_uid: str, series_uid: str) -> HttpResponseBase:
    series = _series(request, study_uid, series_uid)
    if series is None:
        return _not_found()
    _audit(request, "dicomweb.retrieved", series.study, what="metadata", series=series.series_uid)
    # A viewer opens a series by its metadata, then fetches every frame: that is one look, and
    # its frames need no event (nor any write: hundreds of them arrive at once).
    cache.set(_frames_audit_key(request, series), 1, FRAME_AUDIT_WINDOW)
    # One stored document (imaging/metadata.py) instead of every instance's header.
    base = request.build_absolute_uri(reverse("dicomweb_series_retrieve", args=[study_uid, series_uid]) + "/instances/")
    view = view_of(series.study)
    answer = []
    for entry in metadata.entries_for(series):
        meta = deidentified_header(entry["meta"], view) if view.deidentified else entry["meta"]
        if meta is None:
            continue  # the engine refuses it: a de-identified view leaves it out
        frames = ",".join(str(n) for n in range(1, int(entry["frames"]) + 1))
        meta["7FE00010"] = {**meta["7FE00010"], "BulkDataURI": f"{base}{view.uid(entry['sop'])}/frames/{frames}"}
        answer.append(meta)
    return _json(answer)


def instance_metadata(request: HttpRequest, study_uid: str, series_uid: str, sop_uid: str) -> HttpResponseBase:
    instance = _instance(request, study_uid, series_uid, sop_uid)
    if instance is None:
        return _not_found()
    meta = _metadata(request, instance)
    if meta is None:
        return _refused()
    _audit(request, "dicomweb.retrieved", instance.series.study, what="metadata", instance=instance.sop_instance_uid)
    return _json([meta])


def _refused() -> HttpResponseBase:
    return problem(
        409,
        "Conflict",
        "This instance cannot be de-identified safely; your organization receives only de-identified "
        "copies of the cases sent to it.",
    )


def _multipart(parts: Iterable[tuple[dict[str, str], Iterable[bytes]]], boundary: str) -> Iterator[bytes]:
    for headers, body in parts:
        yield f"--{boundary}\r\n".encode() + b"".join(f"{k}: {v}\r\n".encode() for k, v in headers.items()) + b"\r\n"
        yield from body
        yield b"\r\n"
    yield f"--{boundary}--\r\n".encode()


def _accepts(request: HttpRequest, media_type: str) -> bool:
    """Whether the Accept header admits multipart/related of `media_type` (or anything)."""
    accept = request.headers.get("Accept", "*/*").lower()
    return any(
        rng.strip().startswith(("*/*", "multipart/*"))
        or (
            rng.strip().startswith("multipart/related")
            and (f'type="{media_type}"' in rng or f"type={media_type}" in rng or "type=" not in rng)
        )
        for rng in accept.split(",")
    )


def deidentified_instance(version: ObjectVersion, view: View) -> bytes | None:
    """The de-identified copy of one stored instance, made as the on-receipt downloads make it
    (the engine, the on-receipt options, the case secret; pixel data as stored); None when the
    engine refuses it."""
    assert view.secret is not None
    try:
        data = deidentify(b"".join(bytes(p) for p in vault.read_version(version)), deid_export.ON_RECEIPT, view.secret)
    except Refused:
        return None
    return data.data


def _instances_response(request: HttpRequest, instances: list[Instance], view: View = AS_STORED) -> HttpResponseBase:
    if not _accepts(request, "application/dicom"):
        return problem(406, "Not Acceptable", 'Instances are sent as multipart/related; type="application/dicom".')
    boundary = uuid.uuid4().hex

    # Every version in one query (a series is hundreds of instances); one destroyed meanwhile
    # ends the stream, as get_version would.
    versions = vault.current_versions([instance.stored_object for instance in instances])

    def parts() -> Iterator[tuple[dict[str, str], Iterable[bytes]]]:
        for instance in instances:
            version = versions.get(instance.stored_object_id)
            if version is None:
                raise vault.ObjectUnavailable("destroyed")
            if view.deidentified:
                data = deidentified_instance(version, view)
                if data is not None:  # one the engine refuses is left out, never sent as stored
                    yield {"Content-Type": "application/dicom", "Content-Length": str(len(data))}, [data]
                continue
            yield (
                {"Content-Type": "application/dicom", "Content-Length": str(version.size)},
                (bytes(chunk) for chunk in stream_plaintext(version, 0, version.size)),
            )

    return _dicom_parts(parts(), boundary)


def _dicom_parts(parts: Iterable[tuple[dict[str, str], Iterable[bytes]]], boundary: str) -> HttpResponseBase:
    response = StreamingHttpResponse(
        _multipart(parts, boundary),
        content_type=f'multipart/related; type="application/dicom"; boundary={boundary}',
    )
    response["Cache-Control"] = "no-store"
    return response


def retrieve_series(request: HttpRequest, study_uid: str, series_uid: str) -> HttpResponseBase:
    series = _series(request, study_uid, series_uid)
    if series is None:
        return _not_found()
    instances = list(series.instances.select_related("stored_object"))
    # A viewer that opened the series by its metadata then streams every instance in this one
    # request instead of a request per frame: the same single look as its frames.
    key = _frames_audit_key(request, series)
    if cache.get(key) is None:
        _audit(
            request,
            "dicomweb.retrieved",
            series.study,
            what="instances",
            series=series.series_uid,
            count=len(instances),
        )
    return _instances_response(request, instances, view_of(series.study))


def retrieve_study(request: HttpRequest, study_uid: str) -> HttpResponseBase:
    study = _study(request, study_uid)
    if study is None:
        return _not_found()
    instances = list(Instance.objects.filter(series__study=study).select_related("stored_object"))
    _audit(request, "dicomweb.retrieved", study, what="instances", count=len(instances))
    return _instances_response(request, instances, view_of(study))


def retrieve_instance(request: HttpRequest, study_uid: str, series_uid: str, sop_uid: str) -> HttpResponseBase:
    instance = _instance(request, study_uid, series_uid, sop_uid)
    if instance is None:
        return _not_found()
    view = view_of(instance.series.study)
    if view.deidentified:
        if not _accepts(request, "application/dicom"):
            return _instances_response(request, [instance], view)  # the 406
        data = deidentified_instance(vault.get_version(instance.stored_object), view)
        if data is None:
            return _refused()
        part = {"Content-Type": "application/dicom", "Content-Length": str(len(data))}
        _audit(
            request, "dicomweb.retrieved", instance.series.study, what="instance", instance=instance.sop_instance_uid
        )
        return _dicom_parts([(part, [data])], uuid.uuid4().hex)
    _audit(request, "dicomweb.retrieved", instance.series.study, what="instance", instance=sop_uid)
    return _instances_response(request, [instance])


def _frames_audit_key(request: HttpRequest, series: Series) -> str:
    return f"dicomweb-frames:{_actor(request).pk}:{series.pk}"


def _frame_numbers(value: str, count: int) -> list[int]:
    try:
        numbers = [int(n) for n in value.split(",")]
    except ValueError:
        raise BadRequest("frame numbers are whole numbers separated by commas") from None
    if not numbers or any(n < 1 or n > count for n in numbers):
        raise BadRequest(f"this instance has frames 1 to {count}")
    return numbers


def _frame_bytes(dataset: pydicom.Dataset, numbers: list[int]) -> tuple[str, list[bytes]]:
    syntax = dataset.file_meta.TransferSyntaxUID
    count = int(dataset.get("NumberOfFrames", 1) or 1)
    if syntax.is_encapsulated:
        frames = list(pydicom.encaps.generate_frames(dataset.PixelData, number_of_frames=count))
        return str(syntax), [frames[n - 1] for n in numbers]
    if syntax not in NATIVE_SYNTAXES:
        raise BadRequest("frames of big-endian instances are not offered; retrieve the instance")
    size = (
        int(dataset.Rows)
        * int(dataset.Columns)
        * int(dataset.get("SamplesPerPixel", 1))
        * int(dataset.BitsAllocated)
        // 8
    )
    data = dataset.PixelData
    return str(ExplicitVRLittleEndian), [data[(n - 1) * size : n * size] for n in numbers]


def _native_frames(instance: Instance, numbers: list[int]) -> list[bytes] | None:
    """The frames of an instance with native (uncompressed little-endian) pixels, reading only the
    header and the frames' own bytes: the pixel data element is skipped, not read, while the
    header is parsed, so a frame of a 400-frame object decrypts the segments it lies in instead
    of the whole object. None when the pixels are not laid out so (the caller reads them all)."""
    with io.BufferedReader(VersionReader(vault.get_version(instance.stored_object)), 1 << 16) as stream:
        dataset = pydicom.dcmread(stream, defer_size=DEFER_PIXELS)
        element: Any = dataset.get_item(PIXEL_DATA, keep_deferred=True)  # its value left unread
        if (
            dataset.file_meta.TransferSyntaxUID not in NATIVE_SYNTAXES
            or not isinstance(element, RawDataElement)
            or element.value is not None  # small enough to have been read: nothing to save
        ):
            return None
        start = element.value_tell
        size = (
            int(dataset.Rows)
            * int(dataset.Columns)
            * int(dataset.get("SamplesPerPixel", 1))
            * int(dataset.BitsAllocated)
            // 8
        )
        if size == 0 or max(numbers) * size > element.length:
            return None
        frames = []
        for n in numbers:
            stream.seek(start + (n - 1) * size)
            frames.append(stream.read(size))
        return frames


def retrieve_frames(
    request: HttpRequest, study_uid: str, series_uid: str, sop_uid: str, frames: str
) -> HttpResponseBase:
    instance = _instance(request, study_uid, series_uid, sop_uid)
    if instance is None:
        return _not_found()
    numbers = _frame_numbers(frames, instance.frames)
    if not _accepts(request, "application/octet-stream"):
        return problem(406, "Not Acceptable", 'Frames are sent as multipart/related; type="application/octet-stream".')
    native = _native_frames(instance, numbers)
    syntax, data = (
        (str(ExplicitVRLittleEndian), native)
        if native is not None
        else _frame_bytes(_dataset(instance, pixels=True), numbers)
    )
    wanted = re.findall(r'transfer-syntax="?([0-9.*]+)', request.headers.get("Accept", ""))
    if wanted and syntax not in wanted and "*" not in wanted:
        return problem(
            406, "Not Acceptable", f"Frames of this instance are available in transfer syntax {syntax} only."
        )
    series = instance.series
    key = _frames_audit_key(request, series)
    if cache.get(key) is None and cache.add(key, 1, FRAME_AUDIT_WINDOW):
        _audit(request, "dicomweb.retrieved", series.study, what="frames", series=series.series_uid)
    boundary = uuid.uuid4().hex
    parts = (
        (
            {"Content-Type": f"application/octet-stream; transfer-syntax={syntax}", "Content-Length": str(len(frame))},
            [frame],
        )
        for frame in data
    )
    response = StreamingHttpResponse(
        _multipart(parts, boundary),
        content_type=(
            f'multipart/related; type="application/octet-stream"; transfer-syntax={syntax}; boundary={boundary}'
        ),
    )
    response["Cache-Control"] = "no-store"
    return response


def _rendered(request: HttpRequest, instance: Instance, frame: int) -> HttpResponseBase:
    from PIL import Image

    dataset = _dataset(instance, pixels=True)
    pixels = dataset.pixel_array
    if int(dataset.get("NumberOfFrames", 1) or 1) > 1:
        pixels = pixels[frame - 1]
    image: Any
    if pixels.ndim == 3:  # colour
        image = Image.fromarray(pixels.astype(np.uint8))
    else:
        values = pixels.astype(np.float64) * float(dataset.get("RescaleSlope", 1) or 1) + float(
            dataset.get("RescaleIntercept", 0) or 0
        )
        center, width = _window(dataset, values)
        scaled = np.clip((values - (center - width / 2)) / max(width, 1) * 255, 0, 255).astype(np.uint8)
        if dataset.get("PhotometricInterpretation") == "MONOCHROME1":
            scaled = 255 - scaled
        image = Image.fromarray(scaled)
    jpeg = "image/jpeg" in request.headers.get("Accept", "") and "image/png" not in request.headers.get("Accept", "")
    out = io.BytesIO()
    image.save(out, format="JPEG" if jpeg else "PNG", quality=90)
    _audit(request, "dicomweb.retrieved", instance.series.study, what="rendered", instance=instance.sop_instance_uid)
    response = HttpResponse(out.getvalue(), content_type="image/jpeg" if jpeg else "image/png")
    response["Cache-Control"] = "no-store"
    return response


def _first(value: Any) -> float:
    """A window value: DICOM allows several (presets); the first is the default."""
    return float(value[0]) if isinstance(value, pydicom.multival.MultiValue) else float(value)


def _window(dataset: pydicom.Dataset, values: np.ndarray) -> tuple[float, float]:
    center, width = dataset.get("WindowCenter"), dataset.get("WindowWidth")
    if center is not None and width is not None:
        return _first(center), _first(width)
    low, high = float(values.min()), float(values.max())
    return (low + high) / 2, max(high - low, 1.0)


def rendered_instance(request: HttpRequest, study_uid: str, series_uid: str, sop_uid: str) -> HttpResponseBase:
    instance = _instance(request, study_uid, series_uid, sop_uid)
    return _not_found() if instance is None else _rendered(request, instance, 1)


def rendered_frame(
    request: HttpRequest, study_uid: str, series_uid: str, sop_uid: str, frames: str
) -> HttpResponseBase:
    instance = _instance(request, study_uid, series_uid, sop_uid)
    if instance is None:
        return _not_found()
    numbers = _frame_numbers(frames, instance.frames)
    if len(numbers) != 1:
        raise BadRequest("render one frame at a time")
    return _rendered(request, instance, numbers[0])


# --- STOW-RS --------------------------------------------------------------------------------
CASE_NUMBER = re.compile(NUMBER)


class StoreRefused(Exception):
    def __init__(self, response: HttpResponseBase) -> None:
        super().__init__(response.status_code)
        self.response = response


def _store_destination(request: HttpRequest, number: str | None) -> tuple[policy.OrgAccess, Case | None]:
    """Who stores, and into which case: the same doors as attaching an upload over the API
    (api.cases.caller_access, policy.case_for, cases.actions.require_attach), asked before a
    byte of the body is read. Outsiders get 404, the wrong role or token scope 403, a case that
    takes no files now (sent, closed, the lab's access revoked) 409."""
    try:
        if number is None:
            return caller_access(request, Perm.FILES_UPLOAD), None
        if not CASE_NUMBER.match(number):
            raise Http404("no such case")
        access = caller_access(request)
        case = policy.case_for(access, number)
        case_actions.require_attach(access, case)
        return access, case
    except Http404:
        where = "No such case." if number is not None else "No organization of yours to store into."
        raise StoreRefused(problem(404, "Not Found", where)) from None
    except policy.Forbidden as exc:
        raise StoreRefused(
            problem(
                403,
                "Forbidden",
                f"Your role or token scope does not let you add files here ({exc}): a token needs cases:write.",
            )
        ) from None
    except ValidationError as exc:
        raise StoreRefused(problem(409, "Conflict", " ".join(exc.messages))) from None
    except HttpError as exc:
        raise StoreRefused(problem(exc.status_code, "Bad Request", str(exc))) from None


def _boundary(request: HttpRequest) -> str:
    media_type, parameters = media_type_parameters(request.META.get("CONTENT_TYPE", ""))
    if media_type != "multipart/related" or parameters.get("type", stow.DICOM).lower() != stow.DICOM:
        raise StoreRefused(
            problem(415, "Unsupported Media Type", 'Send instances as multipart/related; type="application/dicom".')
        )
    boundary = parameters.get("boundary", "")
    if not boundary:
        raise StoreRefused(problem(400, "Bad Request", "The Content-Type has no boundary."))
    return boundary


def _body(request: HttpRequest) -> Callable[[int], bytes]:
    """read(n) over the request body however it is framed: with a Content-Length through
    Django, chunked straight from the server's de-chunking stream (Django reads such a body as
    empty). Past DICOMWEB_STOW_MAX_BYTES it raises stow.BodyTooLarge."""
    limit = settings.DICOMWEB_STOW_MAX_BYTES
    if "chunked" in request.META.get("HTTP_TRANSFER_ENCODING", "").lower():
        if not request.META.get("wsgi.input_terminated"):
            raise StoreRefused(problem(411, "Length Required", "Send the body with a Content-Length."))
        raw = request.META["wsgi.input"].read
    else:
        try:
            length = int(request.META.get("CONTENT_LENGTH") or 0)
        except ValueError:
            raise StoreRefused(problem(400, "Bad Request", "Content-Length must be a number.")) from None
        if length > limit:
            raise StoreRefused(
                problem(413, "Content Too Large", f"One request carries at most {limit} bytes; send fewer instances.")
            )
        raw = request.read
    total = 0

    def read(size: int) -> bytes:
        nonlocal total
        chunk: bytes = raw(size)
        total += len(chunk)
        if total > limit:
            raise stow.BodyTooLarge
        return chunk

    return read


def _store_response(request: HttpRequest, result: stow.StowResult, case: Case | None) -> HttpResponseBase:
    stored, failed = result.stored, result.failed
    if not result.parts:
        return problem(400, "Bad Request", f"No instance could be read from the body: {result.stopped}.")
    if result.body_too_large and not stored:
        limit = settings.DICOMWEB_STOW_MAX_BYTES
        return problem(413, "Content Too Large", f"One request carries at most {limit} bytes; send fewer instances.")

    # The sender retrieves them as it gets the case: by its de-identified UIDs when it received
    # the case with De-identification on receipt (the Referenced SOP Instance UIDs stay the ones it sent).
    principal = principal_of(request)
    view = view_for(principal, case) if case is not None and principal is not None else AS_STORED

    def url(name: str, *args: str) -> str | None:
        # Only instances of a case can be retrieved over DICOMweb (once indexed, in the background).
        uids = [view.uid(uid) for uid in args]
        return request.build_absolute_uri(reverse(name, args=uids)) if case is not None else None

    studies = {p.study_uid for p in stored}
    answer: dict[str, Any] = {
        "00081190": _attr("UR", url("dicomweb_study", *studies) if len(studies) == 1 else None),
    }
    if failed:
        answer["00081198"] = {
            "vr": "SQ",
            "Value": [
                {
                    "00081150": _attr("UI", p.sop_class_uid),
                    "00081155": _attr("UI", p.sop_instance_uid),
                    "00081197": _attr("US", p.failure),
                }
                for p in failed
            ],
        }
    if stored:
        answer["00081199"] = {
            "vr": "SQ",
            "Value": [
                {
                    "00081150": _attr("UI", p.sop_class_uid),
                    "00081155": _attr("UI", p.sop_instance_uid),
                    "00081190": _attr("UR", url("dicomweb_instance", p.study_uid, p.series_uid, p.sop_instance_uid)),
                }
                for p in stored
            ],
        }
    response = HttpResponse(
        json.dumps(answer), content_type=DICOM_JSON, status=200 if not failed else 202 if stored else 409
    )
    response["Cache-Control"] = "no-store"
    return response


def store_instances(request: HttpRequest, study_uid: str | None = None, number: str | None = None) -> HttpResponseBase:
    if study_uid is not None and not UID.match(study_uid):
        return _not_found()
    try:
        access, case = _store_destination(request, number)
        boundary = _boundary(request)
        read = _body(request)
        parts = MultipartReader(read, boundary)
    except (StoreRefused, MultipartError) as exc:
        if isinstance(exc, MultipartError):
            return problem(400, "Bad Request", str(exc))
        return exc.response
    result = stow.store_instances(access, parts, case=case, study_uid=study_uid)
    return _store_response(request, result, case)


# --- wiring ---------------------------------------------------------------------------------
def _view(handler: Any) -> Any:
    """GET only, a signed-in person or a token, bad queries as 400 problem documents."""

    @api_actor
    def view(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponseBase:
        if request.method not in ("GET", "HEAD"):
            return problem(405, "Method Not Allowed", "Use GET.")
        try:
            return handler(request, *args, **kwargs)
        except BadRequest as exc:
            return problem(400, "Bad Request", str(exc))
        except vault.ObjectUnavailable:
            return _not_found()

    view.__name__ = handler.__name__
    return view


def _store_view(handler: Any) -> Any:
    """POST only (STOW-RS), a signed-in person or a token."""

    @api_actor
    def view(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponseBase:
        if request.method != "POST":
            return problem(405, "Method Not Allowed", "Use POST to store instances.")
        return handler(request, *args, **kwargs)

    view.__name__ = handler.__name__
    return view


def _by_method(get: Any, post: Any) -> Any:
    """One URL, QIDO/WADO on GET and STOW on POST (the standard's resources)."""
    reading, storing = _view(get), _store_view(post)

    @api_actor
    def view(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponseBase:
        return (storing if request.method == "POST" else reading)(request, *args, **kwargs)

    view.__name__ = f"{get.__name__}_or_{post.__name__}"
    return view


def store_case_instances(request: HttpRequest, number: str, study_uid: str | None = None) -> HttpResponseBase:
    return store_instances(request, study_uid, number=number)


def urlpatterns() -> list[Any]:
    from django.urls import path

    study = "studies/<str:study_uid>"
    series = f"{study}/series/<str:series_uid>"
    instance = f"{series}/instances/<str:sop_uid>"
    case = "cases/<str:number>/studies"
    return [
        path("studies", _by_method(search_studies, store_instances), name="dicomweb_studies"),
        path(study, _by_method(retrieve_study, store_instances), name="dicomweb_study"),
        path(case, _store_view(store_case_instances), name="dicomweb_case_studies"),
        path(f"{case}/<str:study_uid>", _store_view(store_case_instances), name="dicomweb_case_study"),
        path(f"{study}/series", _view(search_series), name="dicomweb_series"),
        path(f"{series}", _view(retrieve_series), name="dicomweb_series_retrieve"),
        path(f"{series}/instances", _view(search_instances), name="dicomweb_instances"),
        path(f"{series}/metadata", _view(series_metadata), name="dicomweb_series_metadata"),
        path(f"{instance}", _view(retrieve_instance), name="dicomweb_instance"),
        path(f"{instance}/metadata", _view(instance_metadata), name="dicomweb_instance_metadata"),
        path(f"{instance}/frames/<str:frames>", _view(retrieve_frames), name="dicomweb_frames"),
        path(f"{instance}/rendered", _view(rendered_instance), name="dicomweb_rendered"),
        path(f"{instance}/frames/<str:frames>/rendered", _view(rendered_frame), name="dicomweb_frame_rendered"),
    ]
