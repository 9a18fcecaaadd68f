"""Thumbnails of a case's photos, X-rays, DICOM files and series, and 3D scans.

Made in the background worker once content joins a case (cases.actions.attach_file and
add_version queue `thumbnail_file`; the DICOM ingest task queues `thumbnail_series` for each of
the case's series), below the ingests' priority, never in a request. A thumbnail is a JPEG of at
most THUMBNAIL_SIZE pixels a side, stored as its own encrypted vault object (never as plaintext
on disk); the Thumbnail row says whose it is.

- raster images (JPEG, PNG, TIFF): scaled down with Pillow, EXIF orientation applied, 16-bit
  greyscale stretched to 8 bits;
- DICOM: the middle frame (of the middle instance, for a series), its VOI window when the file
  has one and its 1st to 99th percentile otherwise, MONOCHROME1 inverted;
- STL, PLY, OBJ: an occlusal view (looking along the scan's thinnest extent) rendered as a shaded
  height map with numpy: triangles sampled into points, a z-buffer, light from the upper left;
- HEIC: none (Pillow cannot decode it here); the pages show the file's type instead.
"""

from __future__ import annotations

import io
import logging
import re
import struct
from typing import Any

import numpy as np
from django.db import models, transaction
from django.utils import timezone
from PIL import Image, ImageOps

from casebridge.imaging.models import IngestJob, IngestState, Instance, Series, Thumbnail
from casebridge.orgs.models import Organization
from casebridge.vault import api as vault
from casebridge.vault.models import ObjectVersion, StoredObject
from casebridge.vault.reader import VersionReader

log = logging.getLogger(__name__)

THUMBNAIL_SIZE = 256
RASTER_TYPES = frozenset({"jpeg", "png", "tiff"})
MESH_TYPES = frozenset({"stl", "ply", "obj"})
MADE_FOR = RASTER_TYPES | MESH_TYPES | {"dicom"}
# Queued when a file joins a case. A DICOM file is pictured by its series instead (one picture
# for a CBCT of 400 slices), and each image of an X-ray series after the ingest
# (make_for_series_after_ingest).
QUEUED_FOR = RASTER_TYPES | MESH_TYPES
XRAY_MODALITIES = frozenset({"DX", "PX", "IO", "CR", "RG"})
MAX_MESH_BYTES = 512 << 20  # a 100 MB scan is large; past this the scan gets no picture
MAX_POINTS = 3_000_000  # points sampled from a mesh's triangles


class NoThumbnail(Exception):
    """The content cannot be pictured (an unsupported or damaged file)."""


# --- rendering ------------------------------------------------------------------------------
def _to_jpeg(image: Image.Image) -> tuple[bytes, int, int]:
    if image.mode not in ("L", "RGB"):
        image = image.convert("RGBA" if "A" in image.getbands() else "RGB")
        if image.mode == "RGBA":
            background = Image.new("RGB", image.size, (255, 255, 255))
            background.paste(image, mask=image.getchannel("A"))
            image = background
    image.thumbnail((THUMBNAIL_SIZE, THUMBNAIL_SIZE), Image.Resampling.LANCZOS)
    out = io.BytesIO()
    image.save(out, format="JPEG", quality=80)
    return out.getvalue(), image.width, image.height


def _stretch(pixels: np.ndarray, window: tuple[float, float] | None = None) -> np.ndarray:
    """Greyscale values to 0..255: within `window` (low, high), or between the 1st and 99th percentile."""
    values = pixels.astype(np.float32)
    low, high = window if window else (float(np.percentile(values, 1)), float(np.percentile(values, 99)))
    if high <= low:
        low, high = float(values.min()), float(values.max()) or 1.0
    scaled = (values - low) * (255.0 / max(high - low, 1e-6))
    return np.clip(scaled, 0, 255).astype(np.uint8)


def stretch_to_8_bits(image: Image.Image) -> Image.Image:
    """16-bit and floating-point greyscale (X-ray TIFFs) as 8 bits, between its 1st and 99th
    percentile; other images as they are."""
    if image.mode in ("I;16", "I;16B", "I;16L", "I", "F"):
        return Image.fromarray(_stretch(np.asarray(image)))
    return image


def render_raster(stream: Any) -> tuple[bytes, int, int]:
    try:
        with Image.open(stream) as opened:
            opened.draft("RGB", (THUMBNAIL_SIZE * 2, THUMBNAIL_SIZE * 2))  # JPEG: decode at a reduced scale
            return _to_jpeg(stretch_to_8_bits(ImageOps.exif_transpose(opened)))
    except (OSError, ValueError, Image.DecompressionBombError) as exc:
        raise NoThumbnail(f"the image cannot be read ({type(exc).__name__})") from exc


def render_dicom(stream: Any) -> tuple[bytes, int, int]:
    import pydicom
    from pydicom.multival import MultiValue
    from pydicom.pixels import pixel_array

    try:
        ds = pydicom.dcmread(stream, stop_before_pixels=True)
        frames = int(getattr(ds, "NumberOfFrames", 1) or 1)
        stream.seek(0)
        pixels = pixel_array(stream, index=frames // 2 if frames > 1 else None)
    except Exception as exc:  # pydicom raises many kinds for a damaged or unsupported file
        raise NoThumbnail(f"the DICOM pixels cannot be read ({type(exc).__name__})") from exc
    if pixels.ndim == 3 and pixels.shape[-1] == 3:
        return _to_jpeg(Image.fromarray(_stretch(pixels, (0, 255)) if pixels.dtype != np.uint8 else pixels, "RGB"))
    if pixels.ndim != 2:
        raise NoThumbnail("the DICOM image is not a single greyscale or colour frame")
    slope, intercept = float(getattr(ds, "RescaleSlope", 1) or 1), float(getattr(ds, "RescaleIntercept", 0) or 0)
    values = pixels.astype(np.float32) * slope + intercept
    window = None
    center, width = getattr(ds, "WindowCenter", None), getattr(ds, "WindowWidth", None)
    if center is not None and width is not None:
        c = float(center[0] if isinstance(center, MultiValue) else center)
        w = float(width[0] if isinstance(width, MultiValue) else width)
        window = (c - w / 2, c + w / 2)
    grey = _stretch(values, window)
    if str(getattr(ds, "PhotometricInterpretation", "")) == "MONOCHROME1":
        grey = 255 - grey
    return _to_jpeg(Image.fromarray(grey, "L"))


# --- meshes ---------------------------------------------------------------------------------
def _stl(data: bytes) -> tuple[np.ndarray, np.ndarray | None]:
    if len(data) >= 84:
        count = struct.unpack_from("<I", data, 80)[0]
        if 84 + 50 * count == len(data):
            facet = np.dtype([("n", "<3f4"), ("v", "<9f4"), ("a", "<u2")])
            facets = np.frombuffer(data, facet, count, 84)
            vertices = facets["v"].reshape(-1, 3).astype(np.float64)
            return vertices, np.arange(len(vertices)).reshape(-1, 3)
    numbers = re.findall(rb"vertex\s+(\S+)\s+(\S+)\s+(\S+)", data)
    vertices = np.array(numbers, dtype=np.float64).reshape(-1, 3)
    usable = len(vertices) - len(vertices) % 3
    return vertices[:usable], np.arange(usable).reshape(-1, 3)


_PLY_TYPES = {
    "char": "i1",
    "int8": "i1",
    "uchar": "u1",
    "uint8": "u1",
    "short": "i2",
    "int16": "i2",
    "ushort": "u2",
    "uint16": "u2",
    "int": "i4",
    "int32": "i4",
    "uint": "u4",
    "uint32": "u4",
    "float": "f4",
    "float32": "f4",
    "double": "f8",
    "float64": "f8",
}


def _ply(data: bytes) -> tuple[np.ndarray, np.ndarray | None]:
    end = data.find(b"end_header")
    if not data.startswith(b"ply") or end < 0:
        raise NoThumbnail("not a PLY file")
    body_at = data.index(b"\n", end) + 1
    header = data[:end].decode("ascii", "replace").splitlines()
    fmt = next((line.split()[1] for line in header if line.startswith("format")), "")
    elements: list[tuple[str, int, list[list[str]]]] = []
    for line in header:
        words = line.split()
        if words[:1] == ["element"] and len(words) == 3:
            elements.append((words[1], int(words[2]), []))
        elif words[:1] == ["property"] and elements:
            elements[-1][2].append(words[1:])
    if not elements or elements[0][0] != "vertex":
        raise NoThumbnail("the PLY file does not begin with its vertices")
    _name, count, properties = elements[0]
    names = [p[-1] for p in properties]
    if any(p[0] == "list" for p in properties) or not {"x", "y", "z"} <= set(names):
        raise NoThumbnail("the PLY vertices are not plain x, y, z")
    if fmt == "ascii":
        rows = data[body_at:].split(b"\n", count)[:count]
        table = np.array([row.split()[: len(names)] for row in rows], dtype=np.float64)
        return table[:, [names.index(a) for a in "xyz"]], None
    order = "<" if fmt == "binary_little_endian" else ">"
    dtype = np.dtype([(p[-1], order + _PLY_TYPES[p[0]]) for p in properties])
    vertices = np.frombuffer(data, dtype, count, body_at)
    points = np.stack([vertices[a].astype(np.float64) for a in "xyz"], axis=1)
    faces = None
    after = body_at + dtype.itemsize * count
    if len(elements) > 1 and elements[1][0] == "face" and len(elements[1][2]) == 1:
        kind = elements[1][2][0]  # "list uchar int vertex_indices": triangles only
        if kind[0] == "list" and kind[1] in _PLY_TYPES and kind[2] in _PLY_TYPES:
            tri = np.dtype([("n", order + _PLY_TYPES[kind[1]]), ("i", order + _PLY_TYPES[kind[2]], 3)])
            if len(data) - after >= tri.itemsize * elements[1][1]:
                triangles: Any = np.frombuffer(data, tri, elements[1][1], after)
                if (triangles["n"] == 3).all():
                    faces = triangles["i"].astype(np.int64)
    return points, faces


def _obj(data: bytes) -> tuple[np.ndarray, np.ndarray | None]:
    coordinates = re.findall(rb"^v\s+(\S+)\s+(\S+)\s+(\S+)", data, re.MULTILINE)
    vertices = np.array(coordinates, dtype=np.float64).reshape(-1, 3)
    corners = re.findall(rb"^f\s+(-?\d+)\S*\s+(-?\d+)\S*\s+(-?\d+)", data, re.MULTILINE)
    faces = np.array(corners, dtype=np.int64).reshape(-1, 3) if corners else None
    if faces is not None:
        faces = np.where(faces > 0, faces - 1, len(vertices) + faces)
    return vertices, faces


def _surface_points(vertices: np.ndarray, faces: np.ndarray | None, cell: float) -> np.ndarray:
    """The vertices and, when triangles are known, points spread over each at about `cell` apart."""
    if faces is None or len(faces) == 0:
        return vertices
    faces = faces[(faces >= 0).all(axis=1) & (faces < len(vertices)).all(axis=1)]
    a, b, c = vertices[faces[:, 0]], vertices[faces[:, 1]], vertices[faces[:, 2]]
    area = 0.5 * np.linalg.norm(np.cross(b - a, c - a), axis=1)
    per = np.clip(np.ceil(area / (cell * cell) * 3), 1, MAX_POINTS).astype(np.int64)
    if per.sum() > MAX_POINTS:
        per = np.maximum(1, (per * (MAX_POINTS / per.sum())).astype(np.int64))
    index = np.repeat(np.arange(len(faces)), per)
    rng = np.random.default_rng(0)
    u, v = rng.random(len(index)), rng.random(len(index))
    flip = u + v > 1
    u[flip], v[flip] = 1 - u[flip], 1 - v[flip]
    sampled = a[index] + (b[index] - a[index]) * u[:, None] + (c[index] - a[index]) * v[:, None]
    return np.concatenate([vertices, sampled])


def render_mesh(data: bytes, file_type: str) -> tuple[bytes, int, int]:
    try:
        parse = {"stl": _stl, "ply": _ply, "obj": _obj}[file_type]
        vertices, faces = parse(data)
    except (ValueError, KeyError, IndexError, struct.error) as exc:
        raise NoThumbnail(f"the scan cannot be read ({type(exc).__name__})") from exc
    vertices = vertices[np.isfinite(vertices).all(axis=1)]
    if len(vertices) < 3:
        raise NoThumbnail("the scan holds no surface")
    low, high = vertices.min(axis=0), vertices.max(axis=0)
    extent = high - low
    depth_axis = int(np.argmin(extent))  # look along the thinnest extent: occlusal for an arch
    across = [axis for axis in range(3) if axis != depth_axis]
    scale = (THUMBNAIL_SIZE - 8) / max(float(extent[across].max()), 1e-9)
    width = max(1, int(np.ceil(extent[across[0]] * scale)) + 8)
    height = max(1, int(np.ceil(extent[across[1]] * scale)) + 8)
    points = _surface_points(vertices, faces, 1.0 / scale)
    x = ((points[:, across[0]] - low[across[0]]) * scale + 4).astype(np.int64).clip(0, width - 1)
    y = (height - 1 - ((points[:, across[1]] - low[across[1]]) * scale + 4).astype(np.int64)).clip(0, height - 1)
    z = points[:, depth_axis] - low[depth_axis]
    depth = np.full((height, width), -np.inf)
    np.maximum.at(depth, (y, x), z)
    # The highest point of each 3x3 neighbourhood: sampled points leave gaps through which a
    # farther surface (the scan's underside) would show as pits. A pixel wider, the picture is whole.
    padded = np.pad(depth, 1, constant_values=-np.inf)
    nearest = np.max([padded[dy : dy + height, dx : dx + width] for dy in range(3) for dx in range(3)], axis=0)
    filled = np.where(np.isfinite(nearest), nearest, np.nan)
    surface = np.isfinite(filled)
    heightmap = np.nan_to_num(filled, nan=float(np.nanmin(filled)) if surface.any() else 0.0) * scale
    # Smoothed (3x3 mean, twice): sampled points are not a surface, their noise would glitter.
    for _ in range(2):
        padded = np.pad(heightmap, 1, mode="edge")
        heightmap = np.mean([padded[dy : dy + height, dx : dx + width] for dy in range(3) for dx in range(3)], axis=0)
    gy, gx = np.gradient(heightmap)
    normal = np.stack([-gx, -gy, np.ones_like(heightmap)])
    normal /= np.linalg.norm(normal, axis=0)
    light = np.array([-0.5, -0.5, 0.7]) / np.linalg.norm([-0.5, -0.5, 0.7])
    shade = np.clip(np.tensordot(light, normal, axes=1), 0, 1)
    grey = np.where(surface, 60 + 195 * shade, 255).astype(np.uint8)
    tint = np.stack([grey, grey, np.where(surface, (grey * 0.93).astype(np.uint8), 255)], axis=-1)
    return _to_jpeg(Image.fromarray(tint.astype(np.uint8), "RGB"))


# --- making and storing ---------------------------------------------------------------------
def _stream(version: ObjectVersion) -> io.BufferedReader:
    return io.BufferedReader(VersionReader(version), 1 << 16)


def render_version(version: ObjectVersion, file_type: str) -> tuple[bytes, int, int]:
    """The thumbnail of one stored version. Raises NoThumbnail when it has none."""
    if file_type in RASTER_TYPES:
        return render_raster(_stream(version))
    if file_type == "dicom":
        return render_dicom(_stream(version))
    if file_type in MESH_TYPES:
        if version.size > MAX_MESH_BYTES:
            raise NoThumbnail("the scan is too large to picture")
        return render_mesh(b"".join(bytes(chunk) for chunk in vault.read_version(version)), file_type)
    raise NoThumbnail(f"no thumbnails of {file_type} files")


def _save(organization_id: Any, picture: tuple[bytes, int, int], **owner: Any) -> Thumbnail:
    """Store the picture in the vault and point the owner's Thumbnail row at it (replacing one)."""
    data, width, height = picture
    organization = Organization.objects.get(pk=organization_id)
    image = vault.put_stream(organization=organization, actor=None, chunks=[data], length=len(data)).stored_object
    made_from = owner.pop("made_from")
    with transaction.atomic():
        # Part of the case's file, not a loose upload: it never shows among anyone's files.
        StoredObject.objects.filter(pk=image.pk).update(attached_at=timezone.now())
        old = Thumbnail.objects.select_for_update().filter(**owner).first()
        if old is None:
            thumbnail = Thumbnail.objects.create(image=image, made_from=made_from, width=width, height=height, **owner)
            stale = None
        else:
            stale = old.image
            old.image, old.made_from, old.width, old.height = image, made_from, width, height
            old.save(update_fields=["image", "made_from", "width", "height"])
            thumbnail = old
    if stale is not None:
        vault.destroy_object(stale, actor=None, reason="thumbnail replaced")
    return thumbnail


def make_for_file(stored: StoredObject) -> Thumbnail | None:
    """The thumbnail of a case's file at its current version (made again when out of date)."""
    if stored.file_type not in MADE_FOR or stored.is_destroyed:
        return None
    existing = Thumbnail.objects.filter(source=stored).first()
    if existing is not None and existing.made_from == stored.current_version:
        return existing
    try:
        version = vault.get_version(stored)
        picture = render_version(version, stored.file_type)
    except (NoThumbnail, vault.ObjectUnavailable) as exc:
        log.info("file %s: no thumbnail: %s", stored.pk, exc)
        return None
    return _save(stored.organization_id, picture, source=stored, made_from=version.version)


def make_for_series(series: Series) -> Thumbnail | None:
    """The thumbnail of a DICOM series: its middle instance (made again when the series grew)."""
    existing = Thumbnail.objects.filter(series=series).first()
    if existing is not None and existing.made_from == series.instance_count:
        return existing
    instances = list(Instance.objects.filter(series=series).select_related("stored_object"))
    if not instances:
        return None
    middle = instances[len(instances) // 2]
    try:
        picture = render_version(vault.get_version(middle.stored_object), "dicom")
    except (NoThumbnail, vault.ObjectUnavailable) as exc:
        log.info("series %s: no thumbnail: %s", series.pk, exc)
        return None
    return _save(series.study.organization_id, picture, series=series, made_from=len(instances))


def series_to_picture(job: IngestJob) -> list[Any]:
    """The ids of the series of the job's case to picture after it, once no other ingest of the
    case waits (a STOW-RS of a CBCT is one job per slice: the last one pictures the whole series
    once); none while one does."""
    if job.case_id is None:
        return []
    waiting = IngestJob.objects.filter(case_id=job.case_id, state__in=[IngestState.QUEUED, IngestState.PROCESSING])
    if waiting.exclude(pk=job.pk).exists():
        return []
    return list(Series.objects.filter(study__case_id=job.case_id).values_list("pk", flat=True))


def make_for_series_after_ingest(series: Series) -> None:
    """The series' picture and, for an X-ray set, each image's (the strip); a failure is logged,
    never raised: a missing picture must never fail anything (`casebridge thumbnails` retries)."""
    try:
        make_for_series(series)
        if series.modality in XRAY_MODALITIES:  # a full-mouth set: each image in the strip
            for instance in Instance.objects.filter(series=series).select_related("stored_object"):
                make_for_file(instance.stored_object)
    except Exception:
        log.exception("series %s: thumbnail not made", series.pk)


def missing() -> tuple[list[StoredObject], list[Series]]:
    """Case files and series that have no picture of their current state: files attached before
    thumbnails existed, or whose task was lost. What cannot be pictured stays in the list (it has
    nothing to show), so the count is an upper bound, never a promise."""
    current = models.OuterRef("current_version")
    pictured_files = Thumbnail.objects.filter(source=models.OuterRef("pk"), made_from=current)
    files = (
        StoredObject.objects.filter(attachment__isnull=False, destroyed_at__isnull=True, file_type__in=QUEUED_FOR)
        .exclude(models.Exists(pictured_files))
        .order_by("created_at")
    )
    whole = models.OuterRef("instance_count")
    pictured_series = Thumbnail.objects.filter(series=models.OuterRef("pk"), made_from=whole)
    series = (
        Series.objects.filter(study__case__isnull=False, instance_count__gt=0)
        .exclude(models.Exists(pictured_series))
        .select_related("study")
        .order_by("pk")
    )
    return list(files), list(series)


def backfill(progress: Any = None) -> tuple[int, int]:
    """Make the missing pictures (run by `casebridge thumbnails`), one at a time; returns how many
    were made and how many could not be. `progress(done, total)` is called after each."""
    files, series = missing()
    total, made, failed = len(files) + len(series), 0, 0
    work: list[StoredObject | Series] = [*files, *series]
    for position, item in enumerate(work, start=1):
        try:
            if isinstance(item, Series):
                picture = make_for_series(item)
                if picture is not None and item.modality in XRAY_MODALITIES:
                    for instance in Instance.objects.filter(series=item).select_related("stored_object"):
                        make_for_file(instance.stored_object)
            else:
                picture = make_for_file(item)
        except Exception:  # one damaged file must not stop the rest
            log.exception("thumbnail backfill: %s not pictured", item.pk)
            picture = None
        made, failed = (made + 1, failed) if picture is not None else (made, failed + 1)
        if progress is not None:
            progress(position, total)
    return made, failed


def queue_for_file(stored: StoredObject) -> None:
    """After the current transaction commits, have the worker make the file's thumbnail."""
    if stored.file_type not in QUEUED_FOR:
        return
    from casebridge.imaging.tasks import thumbnail_file

    pk = str(stored.pk)
    transaction.on_commit(lambda: thumbnail_file.enqueue(pk))


def destroy_for(stored: StoredObject, *, reason: str) -> None:
    """Crypto-shred the pictures that show a file just destroyed: its own, and its series' when
    the file is the series' metadata document (a retention purge destroys the whole record)."""
    pictures = Thumbnail.objects.select_related("image").filter(
        models.Q(source=stored) | models.Q(series__metadata_object=stored)
    )
    for thumbnail in pictures:
        vault.destroy_object(thumbnail.image, actor=None, reason=f"its file was destroyed: {reason}"[:200])
