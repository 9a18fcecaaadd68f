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

// The parts of the body `reader` reads. Chunks wait in a queue as they arrive; each part's body is
// copied out of them once, into memory of its own (it is handed on or transferred), and only a
// part's few header bytes are ever joined. (Joining the chunks behind each part and then slicing
// its body out copied every byte twice: a tenth of a CBCT's stream time in its worker.)
export async function parts(reader, boundary, onPart) {
  const decoder = new TextDecoder();
  const queue = []; // chunks not yet taken, the first one from its start
  let queued = 0;
  const more = async () => {
    const next = await reader.read();
    if (next.done) return false;
    queue.push(next.value);
    queued += next.value.length;
    return true;
  };
  // The queue's first `count` bytes as one array: a view when the first chunk holds them all.
  const peek = (count) => {
    if (queue[0].length >= count) return queue[0].subarray(0, count);
    const joined = new Uint8Array(count);
    let at = 0;
    for (const chunk of queue) {
      const piece = chunk.subarray(0, Math.min(chunk.length, count - at));
      joined.set(piece, at);
      at += piece.length;
      if (at === count) break;
    }
    return joined;
  };
  // Takes the queue's first `count` bytes, copied into `into` when given.
  const take = (count, into = null) => {
    let at = 0;
    while (at < count) {
      const chunk = queue[0];
      const piece = chunk.subarray(0, Math.min(chunk.length, count - at));
      if (into) into.set(piece, at);
      at += piece.length;
      if (piece.length === chunk.length) queue.shift();
      else queue[0] = chunk.subarray(piece.length);
    }
    queued -= count;
  };
  for (;;) {
    let headerEnd = queued ? blankLine(peek(Math.min(queued, 8192))) : -1;
    while (headerEnd < 0) {
      if (queued > 8192 || !(await more())) return; // the end, or not ours
      headerEnd = blankLine(peek(Math.min(queued, 8192)));
    }
    const headers = decoder.decode(peek(headerEnd));
    const length = /content-length:\s*(\d+)/i.exec(headers);
    if (!headers.startsWith(`--${boundary}\r\n`) || !length) return;
    const size = Number(length[1]);
    take(headerEnd + 4);
    while (queued < size + 2) if (!(await more())) return;
    const body = new Uint8Array(size);
    take(size, body);
    take(2); // the CRLF before the next delimiter
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
