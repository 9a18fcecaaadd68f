"""SHA-256 of upload plaintext, computed beside encryption and carried across requests.

hashlib releases the GIL on large buffers, so hashing in its own thread overlaps with AES-GCM and
the network instead of adding to them. hashlib state cannot be stored, so each process remembers
the hasher of the uploads it served; an upload resumed on another process (or after a restart)
rebuilds it once by decrypting what was already staged.
"""

from __future__ import annotations

import hashlib
import queue
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


def forget(upload_id: str) -> None:
    with _lock:
        _remembered.pop(upload_id, None)


class BackgroundHasher:
    """Feed chunks from the request thread; a worker thread hashes them in order."""

    _STOP = object()

    def __init__(self, hasher: Any | None = None) -> None:
        self.hasher = hasher or hashlib.sha256()
        self._queue: queue.Queue[Any] = queue.Queue(maxsize=8)
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name="upload-sha256", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while True:
            item = self._queue.get()
            if item is self._STOP:
                return
            try:
                self.hasher.update(item)
            except BaseException as exc:  # surfaced by finish()
                self._error = exc

    def update(self, chunk: bytes) -> None:
        # Chunks must not be mutated afterwards: request reads return fresh bytes objects.
        self._queue.put(chunk)

    def finish(self) -> Any:
        self._queue.put(self._STOP)
        self._thread.join()
        if self._error is not None:
            raise self._error
        return self.hasher
