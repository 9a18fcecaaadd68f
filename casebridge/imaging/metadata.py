"""A series' metadata document: every instance's DICOM JSON header, kept as one encrypted vault
object beside the instances.

A viewer opens a series with WADO-RS series metadata. Reading every instance's header from the
vault costs a decryption and a parse per instance (about 3 ms each: over a second for a 400-slice
CBCT, all of it before the first slice can be drawn). The document is written when an ingest
finishes (and on first use for series indexed before), stored like any file (a ZIP holding
`metadata.json`, encrypted under the organization's keys, part of the case's record for backups
and retention), and replaced when the series gains instances. Bulk data URIs depend on the host
a request came through, so they are filled in per request from the frame counts kept here.
"""

from __future__ import annotations

import io
import json
import logging
import zipfile
from typing import Any

import pydicom
from django.db import transaction
from django.utils import timezone
from pydicom.dataelem import RawDataElement

from casebridge.imaging.models import Instance, Series
from casebridge.vault import api as vault
from casebridge.vault.models import StoredObject
from casebridge.vault.reader import VersionReader

log = logging.getLogger(__name__)
ENTRY = "metadata.json"
MAX_DOCUMENT = 64 << 20  # a series' headers; far above any real one, bounded against a bad object


def header_json(instance: Instance, version: Any = None) -> dict[str, Any]:
    """One instance's DICOM JSON without its pixels (the caller adds the BulkDataURI)."""
    reader = io.BufferedReader(VersionReader(version or vault.get_version(instance.stored_object)), 1 << 16)
    return dataset_json(pydicom.dcmread(reader, stop_before_pixels=True))


# What an element converted to DICOM JSON gave, by what decides it: tag, VR, encoding, the
# dataset's character set and the element's raw bytes.
Memo = dict[tuple[Any, ...], dict[str, Any]]
_MEMO_UP_TO = 1024  # bytes of an element's value worth remembering (names, UIDs, dates, numbers)


def dataset_json(dataset: pydicom.Dataset, memo: Memo | None = None) -> dict[str, Any]:
    """header_json() of a dataset already read without its pixels (an ingest reads each once).

    With `memo`, an element whose raw bytes were converted before (in another slice of the same
    job) is not converted again: a series' slices share most of their header (patient, study,
    equipment, geometry), and the conversion was most of an ingest's time per slice after the
    SHA-256 (docs/performance.md). The result is the same as without it; the element dicts it
    returns may be shared between datasets, and are not to be changed in place."""
    # Without the pixels every element goes inline.
    meta = dataset.to_json_dict(bulk_data_threshold=1 << 30) if memo is None else _remembered_json(dataset, memo)
    meta["00083002"] = {"vr": "UI", "Value": [str(dataset.file_meta.get("TransferSyntaxUID", ""))]}
    bits = int(dataset.get("BitsAllocated", 16))
    meta["7FE00010"] = {"vr": "OW" if bits > 8 else "OB"}
    return meta


def _remembered_json(dataset: pydicom.Dataset, memo: Memo) -> dict[str, Any]:
    """Dataset.to_json_dict(), element by element, through `memo`. Only elements still raw as read
    (not sequences, not private: a private tag's meaning depends on its creator) are remembered."""
    charset = dataset.get_item(0x00080005)
    charset_key = charset.value if isinstance(charset, RawDataElement) else repr(getattr(charset, "value", None))
    meta = {}
    for tag in dataset.keys():  # noqa: SIM118 - iterating a Dataset converts every element
        raw = dataset.get_item(tag)
        key = None
        if (
            isinstance(raw, RawDataElement)
            and raw.VR not in (None, "SQ", "UN")
            and isinstance(raw.value, bytes)
            and len(raw.value) <= _MEMO_UP_TO
            and not tag.is_private
        ):
            key = (int(tag), raw.VR, raw.is_little_endian, raw.is_implicit_VR, charset_key, raw.value)
            found = memo.get(key)
            if found is not None:
                meta[f"{tag:08X}"] = found
                continue
        converted = dataset[tag].to_json_dict(bulk_data_element_handler=None, bulk_data_threshold=1 << 30)
        if key is not None:
            memo[key] = converted
        meta[f"{tag:08X}"] = converted
    return meta


def _instances(series: Series) -> list[Instance]:
    return list(series.instances.select_related("stored_object"))


def build(series: Series, known: dict[str, dict[str, Any]] | None = None) -> list[dict[str, Any]]:
    """The entries of every instance; headers in `known` (by SOP Instance UID: what an ingest
    just read) are taken from there, the others read from the vault."""
    instances = _instances(series)
    known = known or {}
    versions = vault.current_versions([i.stored_object for i in instances if i.sop_instance_uid not in known])
    return [
        {
            "sop": i.sop_instance_uid,
            "frames": i.frames,
            "meta": known.get(i.sop_instance_uid) or header_json(i, versions.get(i.stored_object_id)),
        }
        for i in instances
    ]


def store(series: Series, known: dict[str, dict[str, Any]] | None = None) -> list[dict[str, Any]]:
    """Write (or replace) the series' document; returns its entries. Call outside a transaction."""
    entries = build(series, known)
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr(ENTRY, json.dumps(entries, separators=(",", ":")))
    data = out.getvalue()
    version = vault.put_stream(organization=series.study.organization, actor=None, chunks=[data], length=len(data))
    with transaction.atomic():
        # Part of the study, not a loose upload: it never shows among anyone's files.
        StoredObject.objects.filter(pk=version.stored_object_id).update(attached_at=timezone.now())
        previous = Series.objects.select_for_update().filter(pk=series.pk).values_list("metadata_object", flat=True)
        old = previous.first()
        Series.objects.filter(pk=series.pk).update(
            metadata_object=version.stored_object_id, metadata_instances=len(entries)
        )
    if old is not None:
        stale = StoredObject.objects.filter(pk=old).first()
        if stale is not None:
            vault.destroy_object(stale, actor=None, reason="series metadata document replaced")
    series.metadata_object_id, series.metadata_instances = version.stored_object_id, len(entries)
    return entries


def load(series: Series) -> list[dict[str, Any]] | None:
    """The stored document when it covers every instance of the series; None otherwise."""
    if series.metadata_object_id is None or series.metadata_instances != series.instances.count():
        return None
    stored = StoredObject.objects.filter(pk=series.metadata_object_id, destroyed_at__isnull=True).first()
    if stored is None:
        return None
    try:
        with zipfile.ZipFile(io.BufferedReader(VersionReader(vault.get_version(stored)), 1 << 16)) as archive:
            info = archive.getinfo(ENTRY)
            if info.file_size > MAX_DOCUMENT:
                return None
            entries: list[dict[str, Any]] = json.loads(archive.read(info))
    except (vault.ObjectUnavailable, zipfile.BadZipFile, KeyError, ValueError):
        log.warning("series %s: its metadata document is unreadable; rebuilt from the instances", series.pk)
        return None
    return entries


def entries_for(series: Series) -> list[dict[str, Any]]:
    """The document's entries: stored, or built and stored now (a series indexed before)."""
    found = load(series)
    if found is not None:
        return found
    if transaction.get_connection().in_atomic_block:
        return build(series)  # never write the vault inside someone else's transaction
    return store(series)


def refresh_after_ingest(series_ids: list[Any], known: dict[str, dict[str, Any]] | None = None) -> None:
    """Rewrite the documents of the series an ingest added instances to (errors only logged: the
    series stays viewable, its metadata is then built on request). `known`: the headers the
    ingest read, by SOP Instance UID, so they are not read from the vault again."""
    for series in Series.objects.filter(pk__in=series_ids).select_related("study__organization"):
        try:
            store(series, known)
        except Exception:  # the ingest succeeded; a missing document only costs speed
            log.exception("series %s: metadata document not written", series.pk)
