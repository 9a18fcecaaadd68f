"""Sample files for vault tests: real, valid content of the accepted types, made on the fly."""

from __future__ import annotations

import os
import struct


def binary_stl(size_hint: int, header: bytes = b"CaseBridge test scan") -> bytes:
    """A binary STL of about `size_hint` bytes (84-byte header block + 50 bytes per triangle)."""
    triangles = max(1, (size_hint - 84) // 50)
    body = bytearray()
    facet = struct.pack("<12fH", *([0.0, 0.0, 1.0] + [1.0, 2.0, 3.0] * 3), 0)
    marker = os.urandom(8)
    for i in range(triangles):
        # Vary every facet so segment swaps and offsets would show in the content.
        body += facet[:40] + struct.pack("<I", i) + marker[:6]
    return header.ljust(80, b" ")[:80] + struct.pack("<I", triangles) + bytes(body)
