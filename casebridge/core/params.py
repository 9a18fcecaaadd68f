"""Values read from a request's parameters, where a malformed one means "not found", never 500."""

from __future__ import annotations

import uuid


def uuid_or_none(value: str) -> uuid.UUID | None:
    """The UUID a form or query parameter names, or None when it is not one (the caller then
    answers as for an object that does not exist)."""
    try:
        return uuid.UUID(value)
    except ValueError:
        return None
