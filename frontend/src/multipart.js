// Reading CaseBridge's multipart/related answers (WADO-RS retrieve series and frames) as they
// stream in, and finding what the CBCT viewer needs in a Part 10 file of the series stream. Used
// on the page (the one slice fetched on its own) and in the series stream's worker.

// The parts of a multipart/related answer whose parts each carry a Content-Length (CaseBridge's
// always do), each given to `onPart(headers, body)` as it completes; onPart returns false to stop.
export async function multipart(url, accept, onPart) {
  const response = await fetch(url, { credentials: "same-origin", headers: { Accept: accept } });
  const boundary = /boundary="?([^";]+)"?/.exec(response.headers.get("Content-Type") || "");
  if (!response.ok || !boundary) throw new Error(`the server answered ${response.status}`);
  const reader = response.body.getReader();
  try {
    await parts(reader, boundary[1], onPart);
  } finally {
    reader.cancel().catch(() => {});
  }
}

async function parts(reader, boundary, onPart) {
  const decoder = new TextDecoder();
  let buffer = new Uint8Array(0);
  const chunks = [];
  // At least `count` bytes in `buffer` (false at the end of the body); chunks are joined once
  // they are all there, not each time one arrives.
  const ensure = async (count) => {
    let total = buffer.length;
    while (total < count) {
      const next = await reader.read();
      if (next.done) break;
      chunks.push(next.value);
      total += next.value.length;
    }
    if (chunks.length) {
      const joined = new Uint8Array(total);
      joined.set(buffer);
      let at = buffer.length;
      for (const chunk of chunks.splice(0)) {
        joined.set(chunk, at);
        at += chunk.length;
      }
      buffer = joined;
    }
    return buffer.length >= count;
  };
  for (;;) {
    let headerEnd = blankLine(buffer);
    while (headerEnd < 0) {
      if (buffer.length > 8192 || !(await ensure(buffer.length + 1))) return; // the end, or not ours
      headerEnd = blankLine(buffer);
    }
    const headers = decoder.decode(buffer.subarray(0, headerEnd));
    const length = /content-length:\s*(\d+)/i.exec(headers);
    if (!headers.startsWith(`--${boundary}\r\n`) || !length) return;
    const start = headerEnd + 4;
    const end = start + Number(length[1]);
    if (!(await ensure(end + 2))) return;
    const body = buffer.slice(start, end); // its own memory: it is handed on or transferred
    buffer = buffer.subarray(end + 2); // past the CRLF before the next delimiter
    if (onPart(headers, body) === false) return;
  }
}

function blankLine(bytes) {
  const limit = Math.min(bytes.length, 8192) - 3;
  for (let at = 0; at < limit; at += 1) {
    if (bytes[at] === 13 && bytes[at + 1] === 10 && bytes[at + 2] === 13 && bytes[at + 3] === 10) return at;
  }
  return -1;
}

// (0002,0003) Media Storage SOP Instance UID from a Part 10 file's meta group (explicit VR
// little endian by definition), or null.
export function instanceUid(file) {
  if (file.length < 144 || String.fromCharCode(...file.subarray(128, 132)) !== "DICM") return null;
  const view = new DataView(file.buffer, file.byteOffset, file.byteLength);
  let at = 132;
  while (at + 8 <= file.length && view.getUint16(at, true) === 0x0002) {
    const element = view.getUint16(at + 2, true);
    const vr = String.fromCharCode(file[at + 4], file[at + 5]);
    const long = ["OB", "OW", "OF", "SQ", "UT", "UN"].includes(vr);
    const length = long ? view.getUint32(at + 8, true) : view.getUint16(at + 6, true);
    const value = at + (long ? 12 : 8);
    if (element === 0x0003) {
      return String.fromCharCode(...file.subarray(value, value + length)).replace(/[\0 ]+$/, "");
    }
    at = value + length;
  }
  return null;
}

// The pixel data of a native little-endian Part 10 file whose pixel data is `length` bytes long:
// found where its tag is followed by exactly that length (explicit VR OW/OB or implicit VR),
// looked for at the end of the file first, where it nearly always is. Null when not found.
export function pixelBytes(file, length) {
  const view = new DataView(file.buffer, file.byteOffset, file.byteLength);
  const valueAt = (at) => {
    if (at < 132 || at + 8 > file.length) return -1;
    if (view.getUint32(at, true) !== 0x00107fe0) return -1;
    const vr = String.fromCharCode(file[at + 4], file[at + 5]);
    if ((vr === "OW" || vr === "OB") && view.getUint32(at + 8, true) === length) return at + 12;
    if (view.getUint32(at + 4, true) === length) return at + 8;
    return -1;
  };
  let start = Math.max(valueAt(file.length - length - 12), valueAt(file.length - length - 8));
  for (let at = 132; start < 0 && at + 8 <= file.length - length; at += 1) {
    if (file[at] === 0xe0 && file[at + 1] === 0x7f) start = valueAt(at);
  }
  return start < 0 ? null : file.subarray(start, start + length);
}
