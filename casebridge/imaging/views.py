"""The imaging pages of a case: the 3D scan viewer, the CBCT/CT viewer, the X-ray viewer, the
photo gallery, and the pictures they and the case pages show (thumbnails, browser renditions).

Each goes the way of its siblings: org_permission (a signed-in member with an active membership
and CASES_VIEW; API tokens are refused on these pages), then case_for (the policy's verdict on
the case: another organization, or a lab whose access was revoked, gets 404), then the file or
series must be the case's own. Opening a viewer or the gallery is one audit event naming every
file it shows; each full-size image it then fetches is a download event of its own, as with the
scan viewer. Thumbnails are covered by the event of the page that shows them (the case page or
the case list), not one event per picture."""

from __future__ import annotations

import io
from collections.abc import Sequence
from typing import Any, TypeVar
from uuid import UUID

from allauth.account.decorators import reauthentication_required
from django.contrib import messages
from django.core.exceptions import ValidationError
from django.db.models import F
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.views.decorators.http import require_GET

from casebridge.access.guards import org_permission
from casebridge.access.policy import case_for
from casebridge.access.requests import org_access_of
from casebridge.access.roles import Perm
from casebridge.audit.api import record
from casebridge.audit.exposure import record_case_opened
from casebridge.cases.models import Attachment, AttachmentKind, Case
from casebridge.core.params import uuid_or_none
from casebridge.deid.pixels import format_regions, preview_png
from casebridge.imaging import actions as imaging_actions
from casebridge.imaging import dicomweb
from casebridge.imaging.actions import masks_for_files
from casebridge.imaging.models import Instance, PixelMask, Series, Thumbnail
from casebridge.imaging.thumbnails import XRAY_MODALITIES
from casebridge.vault import api as vault
from casebridge.vault.models import StoredObject

MESH_TYPES = ("stl", "ply", "obj")
CaseT = TypeVar("CaseT", bound=Case)


def scan_attachments(case: Case) -> list[Attachment]:
    """The case's surface scans (STL, PLY, OBJ) a 3D viewer can show, oldest first."""
    return list(
        case.attachments.select_related("stored_object", "case")
        .filter(stored_object__file_type__in=MESH_TYPES, stored_object__destroyed_at__isnull=True)
        .order_by("added_at")
    )


@require_GET
@org_permission(Perm.CASES_VIEW)
def scan_viewer(request: HttpRequest, number: str) -> HttpResponse:
    access = org_access_of(request)
    case = case_for(access, number)
    scans = scan_attachments(case)
    # One event per opening; each file the page then fetches is a download event of its own.
    record_case_opened(access, case, "imaging.scans_viewed", files=[str(a.stored_object_id) for a in scans])
    files = [
        {
            "id": str(a.stored_object_id),
            "name": a.display_name,
            "label": a.label or a.get_kind_display(),
            "type": a.stored_object.file_type,
            "url": reverse("file_content", args=[a.stored_object_id]),
        }
        for a in scans
    ]
    return render(request, "imaging/scan_viewer.html", {"case": case, "files": files})


@require_GET
@org_permission(Perm.CASES_VIEW)
def study_viewer(request: HttpRequest, number: str, series_id: str) -> HttpResponse:
    """One series of the case's imaging in the CBCT/CT viewer (its slices stream by WADO-RS)."""
    access = org_access_of(request)
    case = case_for(access, number)
    series = Series.objects.filter(study__case=case, pk=series_id).select_related("study").first()
    if series is None:
        raise Http404("no such series")
    record_case_opened(access, case, "imaging.study_viewed", study=str(series.study_id), series=str(series.pk))
    uids = dicomweb.view_for(access.principal, case)  # de-identified ones if the case comes so
    config = {"wadoRoot": "/dicomweb", "study": uids.uid(series.study.study_uid), "series": uids.uid(series.series_uid)}
    response = render(request, "imaging/cbct_viewer.html", {"case": case, "series": series, "config": config})
    return _image_page(response)


def _image_page(response: HttpResponse) -> HttpResponse:
    """Cornerstone3D positions its overlays (crosshairs, measurement labels) with style attributes:
    style attributes only, on its viewers' pages only; style elements and every script stay 'self'.
    (django-csp's csp_update decorator does the same; its typing takes no URL arguments.)"""
    vars(response)["_csp_update"] = {"style-src-attr": ["'unsafe-inline'"]}
    return response


def case_series(case: Case) -> list[Series]:
    """The case's indexed series, for its page: modality, size, slices."""
    return list(Series.objects.filter(study__case=case).select_related("study").order_by("study__created_at"))


PHOTO_TYPES = ("jpeg", "png", "heic", "tiff")
XRAY_IMAGE_TYPES = ("jpeg", "png", "tiff")
# A browser shows JPEG and PNG as they are; TIFF is sent as PNG (case_image); HEIC not at all.
BROWSER_TYPES = ("jpeg", "png")
MAX_RENDITION_BYTES = 256 << 20


def _image_attachments(case: Case, types: tuple[str, ...]) -> list[Attachment]:
    return list(
        case.attachments.select_related("stored_object", "case")
        .filter(stored_object__file_type__in=types, stored_object__destroyed_at__isnull=True)
        .order_by("added_at")
    )


def photo_attachments(case: Case) -> list[Attachment]:
    """The case's photos: its JPEG, PNG, HEIC and TIFF files not sent as X-rays, oldest first."""
    return [a for a in _image_attachments(case, PHOTO_TYPES) if a.kind != AttachmentKind.CBCT]


def xray_attachments(case: Case) -> list[Attachment]:
    """Plain-image X-rays: JPEG, PNG and TIFF files sent as "CBCT / X-ray"."""
    return [a for a in _image_attachments(case, XRAY_IMAGE_TYPES) if a.kind == AttachmentKind.CBCT]


def xray_series(case: Case) -> list[Series]:
    return [s for s in case_series(case) if s.modality in XRAY_MODALITIES]


def thumbnails_of(objects: list[StoredObject]) -> dict[object, Thumbnail]:
    """The up-to-date thumbnails of `objects`, by object id."""
    by_id = {o.pk: o for o in objects}
    found = Thumbnail.objects.filter(source_id__in=list(by_id))
    return {t.source_id: t for t in found if t.source_id in by_id and t.made_from == by_id[t.source_id].current_version}


def xray_items(case: Case, org_slug: str, uids: dicomweb.View = dicomweb.AS_STORED) -> list[dict[str, object]]:
    """Every X-ray of the case in the order of the strip: DICOM X-ray series image by image, then
    the plain images. The DICOM ones load through WADO-RS (by the UIDs of `uids`), the others
    through case_image."""
    items: list[dict[str, object]] = []
    series_list = xray_series(case)
    instances = list(
        Instance.objects.filter(series__in=series_list)
        .select_related("series__study", "stored_object")
        .order_by("series__study__created_at", "series__series_number", "instance_number", "created_at")
    )
    plain = xray_attachments(case)
    thumbs = thumbnails_of([i.stored_object for i in instances] + [a.stored_object for a in plain])
    for instance in instances:
        series = instance.series
        thumb = thumbs.get(instance.stored_object_id)
        items.append(
            {
                "kind": "dicom",
                "label": f"{series.modality} {instance.instance_number or ''}".strip(),
                "study": uids.uid(series.study.study_uid),
                "series": uids.uid(series.series_uid),
                "instance": uids.uid(instance.sop_instance_uid),
                "frames": instance.frames,
                "calibrated": series.pixel_spacing_row is not None,
                "thumbnail": reverse("case_thumbnail", args=[org_slug, case.number, thumb.pk]) if thumb else "",
            }
        )
    for number, attachment in enumerate(plain, start=1):
        thumb = thumbs.get(attachment.stored_object_id)
        items.append(
            {
                "kind": "image",
                "label": f"X-ray {number}",
                "url": reverse("case_image", args=[org_slug, case.number, attachment.stored_object_id]),
                "calibrated": False,
                "thumbnail": reverse("case_thumbnail", args=[org_slug, case.number, thumb.pk]) if thumb else "",
            }
        )
    return items


@require_GET
@org_permission(Perm.CASES_VIEW)
def xray_viewer(request: HttpRequest, number: str) -> HttpResponse:
    """The case's X-rays in the 2D viewer, with the strip of the whole set."""
    access = org_access_of(request)
    case = case_for(access, number)
    items = xray_items(case, access.organization.slug, dicomweb.view_for(access.principal, case))
    instance_ids = [str(i) for i in Instance.objects.filter(series__in=xray_series(case)).values_list("pk", flat=True)]
    record_case_opened(
        access,
        case,
        "imaging.xrays_viewed",
        instances=instance_ids,
        files=[str(a.stored_object_id) for a in xray_attachments(case)],
    )
    config = {"wadoRoot": "/dicomweb", "items": items}
    return _image_page(render(request, "imaging/xray_viewer.html", {"case": case, "items": items, "config": config}))


@require_GET
@org_permission(Perm.CASES_VIEW)
def photo_gallery(request: HttpRequest, number: str) -> HttpResponse:
    """The case's photos: thumbnails, and each full size on demand."""
    access = org_access_of(request)
    case = case_for(access, number)
    photos = photo_attachments(case)
    record_case_opened(access, case, "imaging.photos_viewed", files=[str(a.stored_object_id) for a in photos])
    thumbs = thumbnails_of([a.stored_object for a in photos])
    slug = access.organization.slug
    rows = [
        {
            "number": n,
            # Alt text says what the picture is, never whose: the case's neutral label and number.
            "alt": f"Photo {n} of {len(photos)}" + (f" ({a.label})" if a.label else ""),
            "type": a.stored_object.file_type,
            "full": reverse("case_image", args=[slug, case.number, a.stored_object_id])
            if a.stored_object.file_type != "heic"
            else "",
            "download": reverse("file_content", args=[a.stored_object_id]),
            "thumbnail": reverse("case_thumbnail", args=[slug, case.number, thumbs[a.stored_object_id].pk])
            if a.stored_object_id in thumbs
            else "",
        }
        for n, a in enumerate(photos, start=1)
    ]
    return render(request, "imaging/photo_gallery.html", {"case": case, "photos": rows})


def _case_file(case: Case, file_id: UUID) -> StoredObject:
    attachment = (
        Attachment.objects.select_related("stored_object")
        .filter(case=case, stored_object_id=file_id, stored_object__destroyed_at__isnull=True)
        .first()
    )
    if attachment is None:
        raise Http404("no such file")
    return attachment.stored_object


def _rendition_source(stored: StoredObject) -> tuple[Any, bytes]:
    """The current version of a file shown as an image, whole (404 when gone or too large)."""
    try:
        version = vault.get_version(stored)
    except vault.ObjectUnavailable:
        raise Http404("no such version") from None
    if version.size > MAX_RENDITION_BYTES:
        raise Http404("too large to show")
    return version, b"".join(bytes(chunk) for chunk in vault.read_version(version))


@require_GET
@org_permission(Perm.CASES_VIEW)
def case_image(request: HttpRequest, number: str, file_id: UUID) -> HttpResponse:
    """A photo or X-ray of the case as a browser shows it: JPEG and PNG as stored, TIFF as PNG.
    Audited as a download of the file, as every full-size image a viewer fetches."""
    access = org_access_of(request)
    case = case_for(access, number)
    stored = _case_file(case, file_id)
    if stored.file_type not in (*BROWSER_TYPES, "tiff"):
        raise Http404("no browser rendition of this file")
    version, data = _rendition_source(stored)
    content_type = "image/jpeg" if stored.file_type == "jpeg" else "image/png"
    if stored.file_type == "tiff":
        data = _tiff_as_png(data)
    record(
        "file.downloaded",
        actor=access.actor,
        organization=stored.organization_id,
        target=stored,
        patient_ref=str(case.patient_id),
        details={"version": version.version, "size": version.size, "case": case.number, "rendition": "browser"},
    )
    response = HttpResponse(data, content_type=content_type)
    response["Cache-Control"] = "private, no-store"
    response["X-Content-Type-Options"] = "nosniff"
    return response


def _tiff_as_png(data: bytes) -> bytes:
    from PIL import Image

    from casebridge.imaging.thumbnails import stretch_to_8_bits

    try:
        with Image.open(io.BytesIO(data)) as image:
            picture = stretch_to_8_bits(image)
            out = io.BytesIO()
            picture.save(out, format="PNG")
    except (OSError, ValueError, Image.DecompressionBombError):
        raise Http404("the image cannot be read") from None
    return out.getvalue()


def _thumbnail_of_case(thumbnail: Thumbnail, case: Case) -> bool:
    """Whether the picture is of one of the case's files (an attachment, or an image of one of its
    studies) or series, and that file still exists."""
    source = thumbnail.source
    if source is None:
        return thumbnail.series is not None and thumbnail.series.study.case_id == case.pk
    if source.is_destroyed:
        return False
    return (
        Attachment.objects.filter(case=case, stored_object=source).exists()
        or Instance.objects.filter(stored_object=source, series__study__case=case).exists()
    )


@require_GET
@org_permission(Perm.CASES_VIEW)
def case_thumbnail(request: HttpRequest, number: str, thumbnail_id: str) -> HttpResponse:
    """One thumbnail of the case's files or series, decrypted from the vault."""
    access = org_access_of(request)
    case = case_for(access, number)
    thumbnail = Thumbnail.objects.select_related("source", "series__study", "image").filter(pk=thumbnail_id).first()
    if thumbnail is None or thumbnail.image.is_destroyed:
        raise Http404("no such thumbnail")
    if not _thumbnail_of_case(thumbnail, case):
        raise Http404("no such thumbnail")
    try:
        data = b"".join(bytes(chunk) for chunk in vault.read_version(vault.get_version(thumbnail.image)))
    except vault.ObjectUnavailable:
        raise Http404("no such thumbnail") from None
    response = HttpResponse(data, content_type="image/jpeg")
    response["Cache-Control"] = "private, no-store"
    response["X-Content-Type-Options"] = "nosniff"
    return response


def case_pictures(case: Case, org_slug: str) -> dict[str, object]:
    """What the case page shows of its imaging beyond the series list: links to the X-ray viewer
    and the gallery, and the thumbnails, each linking to where its file opens."""
    series = case_series(case)
    photos, plain_xrays, scans = photo_attachments(case), xray_attachments(case), scan_attachments(case)
    xray_series_ids = {s.pk for s in series if s.modality in XRAY_MODALITIES}
    thumbs = thumbnails_of([a.stored_object for a in photos + plain_xrays + scans])
    by_series = {
        t.series_id: t
        for t in Thumbnail.objects.filter(series__in=series).select_related("series")
        if t.series is not None and t.made_from == t.series.instance_count
    }
    pictures: list[dict[str, str]] = []

    def picture(thumbnail: Thumbnail, alt: str, href: str) -> None:
        src = reverse("case_thumbnail", args=[org_slug, case.number, thumbnail.pk])
        pictures.append({"src": src, "alt": alt, "href": href})

    for s in series:
        if s.pk in by_series:
            href = (
                reverse("xray_viewer", args=[org_slug, case.number])
                if s.pk in xray_series_ids
                else reverse("study_viewer", args=[org_slug, case.number, s.pk])
            )
            picture(by_series[s.pk], f"{s.modality} series, {s.instance_count} images", href)
    groups = (
        (plain_xrays, "X-ray", reverse("xray_viewer", args=[org_slug, case.number])),
        (photos, "Photo", reverse("photo_gallery", args=[org_slug, case.number])),
        (scans, "Scan", reverse("scan_viewer", args=[org_slug, case.number])),
    )
    for attachments, name, href in groups:
        for n, a in enumerate(attachments, start=1):
            if a.stored_object_id in thumbs:
                picture(thumbs[a.stored_object_id], f"{name} {n}" + (f" ({a.label})" if a.label else ""), href)
    return {
        "pictures": pictures,
        "xray_series_ids": xray_series_ids,
        "has_xrays": bool(xray_series_ids or plain_xrays),
        "has_photos": bool(photos),
    }


def list_thumbnails(cases: Sequence[CaseT], org_slug: str) -> Sequence[CaseT]:
    """The cases of a case list, each with `thumbnail_url`: its first photo, X-ray, scan or
    series' picture ("" when it has none). Two queries for the whole page."""
    numbers = {c.pk: c.number for c in cases}
    found: dict[Any, Any] = {}
    attached = Thumbnail.objects.filter(
        source__attachment__case_id__in=list(numbers),
        source__destroyed_at__isnull=True,
        made_from=F("source__current_version"),
    ).values_list("source__attachment__case_id", "pk")
    series = Thumbnail.objects.filter(series__study__case_id__in=list(numbers)).values_list(
        "series__study__case_id", "pk"
    )
    for query in (attached, series):
        for case_id, thumbnail_id in query.order_by("created_at"):
            found.setdefault(case_id, thumbnail_id)
    for case in cases:
        picture = found.get(case.pk)
        url = reverse("case_thumbnail", args=[org_slug, case.number, picture]) if picture else ""
        vars(case)["thumbnail_url"] = url  # for the template only: not a field of the model
    return cases


# --- Pixel masks (issue 14, item 2) -----------------------------------------------------------
@org_permission(Perm.ORG_SETTINGS)
@reauthentication_required(allow_get=True)
def pixel_masks(request: HttpRequest) -> HttpResponse:
    """The organization's masks, one per device model: rectangles blanked in that device's images
    when a de-identified copy is made with Clean Pixel Data. POST `operation` save or delete."""
    access = org_access_of(request)
    org = access.organization
    errors: dict[str, list[str]] = {}
    values = {"manufacturer": "", "model": "", "regions": ""}
    if request.method == "POST":
        try:
            if request.POST.get("operation") == "delete":
                imaging_actions.delete_pixel_mask(access, uuid_or_none(request.POST.get("mask", "")))
                messages.success(request, "Mask deleted.")
            else:
                values = {key: request.POST.get(key, "") for key in values}
                imaging_actions.save_pixel_mask(
                    access, manufacturer=values["manufacturer"], model=values["model"], regions_text=values["regions"]
                )
                messages.success(request, "Mask saved.")
            return redirect("pixel_masks", org.slug)
        except ValidationError as error:
            errors = error.message_dict if hasattr(error, "error_dict") else {"__all__": error.messages}
    masks = [
        {"mask": mask, "regions": format_regions(mask.regions)} for mask in PixelMask.objects.filter(organization=org)
    ]
    devices = (
        Series.objects.filter(study__organization=org)
        .exclude(manufacturer="", model="")
        .values_list("manufacturer", "model")
        .distinct()
        .order_by("manufacturer", "model")[:200]
    )
    return render(
        request,
        "imaging/pixel_masks.html",
        {"masks": masks, "devices": list(devices), "values": values, "errors": errors, "nav": "settings"},
        status=400 if errors else 200,
    )


@require_GET
@org_permission(Perm.CASES_VIEW)
def mask_preview(request: HttpRequest, number: str, file_id: UUID) -> HttpResponse:
    """The first frame of a DICOM file of the case with your organization's pixel mask for its
    device drawn on it (PNG): what Clean Pixel Data will blank, to check before sharing. Audited
    as a de-identification preview of the file."""
    access = org_access_of(request)
    case = case_for(access, number)
    stored = _case_file(case, file_id)
    regions = masks_for_files(access.organization, [stored.pk]).get(stored.pk)
    if stored.file_type != "dicom" or not regions:
        raise Http404("no pixel mask for this file's device")
    _version, data = _rendition_source(stored)
    try:
        picture = preview_png(data, regions)
    except Exception:  # pydicom's decoders raise many kinds for a damaged or unsupported file
        raise Http404("the pixels cannot be read") from None
    record_case_opened(access, case, "case.deid_previewed", files=[str(stored.pk)], pixel_mask=True)
    response = HttpResponse(picture, content_type="image/png")
    response["Cache-Control"] = "private, no-store"
    response["X-Content-Type-Options"] = "nosniff"
    return response
