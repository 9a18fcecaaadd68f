"""SHA-256 of upload plaintext carried across requests (the pipeline computes it in its own thread).

hashlib state cannot be stored, so each process remembers the hasher of the uploads it served; an
upload resumed on another process (or after a restart) rebuilds it once by decrypting what was
already staged.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from typing import Any

_MAX_REMEMBERED = 256
_remembered: OrderedDict[str, tuple[int, Any]] = OrderedDict()
_lock = threading.Lock()


def remember(upload_id: str, offset: int, hasher: Any) -> None:
    with _lock:
        _remembered[upload_id] = (offset, hasher.copy())
        _remembered.move_to_end(upload_id)
        while len(_remembered) > _MAX_REMEMBERED:
            _remembered.popitem(last=False)


def recall(upload_id: str, offset: int) -> Any | None:
    with _lock:
        hit = _remembered.get(upload_id)
    if hit is None or hit[0] != offset:
        return None
    return hit[1].copy()


def held_offset(upload_id: str) -> int | None:
    """The offset this process holds the hash of `upload_id` up to, if it does."""
    with _lock:
        hit = _remembered.get(upload_id)
    return None if hit is None else hit[0]


def forget(upload_id: str) -> None:
    with _lock:
        _remembered.pop(upload_id, None)
