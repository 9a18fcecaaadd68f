"""Opaque page cursors for the API's lists: the key of the last row shown, base64 so clients do
not build them, and a clear 400 for one this API did not hand out."""

from __future__ import annotations

import base64
import binascii

from ninja.errors import HttpError

_SEPARATOR = "|"


def encode_cursor(*parts: object) -> str:
    raw = _SEPARATOR.join(str(part) for part in parts).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: str, count: int) -> list[str]:
    """The `count` parts of a cursor from encode_cursor, or HttpError 400."""
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
    except (ValueError, binascii.Error, UnicodeDecodeError):
        raw = ""
    parts = raw.split(_SEPARATOR)
    if len(parts) != count or not all(parts):
        raise HttpError(400, "The cursor is not one this API handed out; start from the first page.")
    return parts
