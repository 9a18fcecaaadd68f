// src/multipart.js reads a multipart/related stream as it arrives, in chunks of any size: every
// part comes out whole and alone, wherever the chunks happen to break it. Run by
// casebridge/imaging/tests/test_frontend_modules.py (node --test).
import assert from "node:assert/strict";
import { test } from "node:test";
import { instanceUid, parts } from "../src/multipart.js";

const BOUNDARY = "casebridge-0123456789";

function body(payloads) {
  const pieces = [];
  for (const payload of payloads) {
    pieces.push(new TextEncoder().encode(
      `--${BOUNDARY}\r\nContent-Type: application/dicom\r\nContent-Length: ${payload.length}\r\n\r\n`,
    ));
    pieces.push(payload, new TextEncoder().encode("\r\n"));
  }
  pieces.push(new TextEncoder().encode(`--${BOUNDARY}--\r\n`));
  const all = new Uint8Array(pieces.reduce((n, p) => n + p.length, 0));
  let at = 0;
  for (const piece of pieces) {
    all.set(piece, at);
    at += piece.length;
  }
  return all;
}

// A real stream's reader, handing out `bytes` in chunks of the sizes `sizes` gives in turn.
function reader(bytes, sizes) {
  let at = 0;
  let turn = 0;
  return new ReadableStream({
    pull(controller) {
      if (at >= bytes.length) return controller.close();
      const size = sizes[turn++ % sizes.length];
      controller.enqueue(bytes.slice(at, at + size));
      at += size;
    },
  }).getReader();
}

function payloads(seed) {
  let state = seed;
  const next = () => (state = (state * 1103515245 + 12345) % 2147483648);
  return Array.from({ length: 12 }, (_, i) => {
    const payload = new Uint8Array(i === 3 ? 0 : 1 + (next() % 40000));
    for (let j = 0; j < payload.length; j += 1) payload[j] = next() & 0xff;
    if (payload.length > 8) payload.set([13, 10, 13, 10], 4); // a blank line inside a body is not a header's end
    return payload;
  });
}

for (const [name, sizes] of [
  ["one chunk", [1 << 30]],
  ["byte by byte", [1]],
  ["chunks smaller than a header", [7, 3, 50]],
  ["uneven chunks", [65536, 1, 4093, 17, 30000]],
]) {
  test(`every part comes out whole, in order: ${name}`, async () => {
    const sent = payloads(sizes.length + sizes[0]);
    const received = [];
    await parts(reader(body(sent), sizes), BOUNDARY, (headers, part) => {
      assert.match(headers, /Content-Length: \d+/);
      received.push(part);
    });
    assert.equal(received.length, sent.length);
    received.forEach((part, i) => {
      assert.deepEqual(part, sent[i]);
      assert.equal(part.byteOffset, 0); // memory of its own, to hand on or transfer
      assert.equal(part.buffer.byteLength, part.length);
    });
  });
}

test("a part cut short by the end of the stream is not given", async () => {
  const whole = body(payloads(5));
  const received = [];
  await parts(reader(whole.subarray(0, whole.length - 5000), [4096]), BOUNDARY, (_h, part) => received.push(part));
  assert.equal(received.length, 11);
});

test("a stream of another boundary gives nothing", async () => {
  const received = [];
  await parts(reader(body(payloads(9)), [1000]), "another-boundary", (_h, part) => received.push(part));
  assert.deepEqual(received, []);
});

test("onPart returning false stops the reading", async () => {
  const received = [];
  await parts(reader(body(payloads(3)), [333]), BOUNDARY, (_h, part) => {
    received.push(part);
    return received.length < 2;
  });
  assert.equal(received.length, 2);
});

test("a Part 10 file's SOP Instance UID is read from its meta group", () => {
  const uid = "1.2.3.4.5";
  const file = new Uint8Array(200);
  file.set(new TextEncoder().encode("DICM"), 128);
  // (0002,0003) UI, length 10 (padded with a NUL), explicit VR little endian
  file.set([0x02, 0x00, 0x03, 0x00, 0x55, 0x49, 10, 0], 132);
  file.set(new TextEncoder().encode(`${uid}\0`.padEnd(10, "\0")), 140);
  assert.equal(instanceUid(file), uid);
  assert.equal(instanceUid(file.subarray(0, 100)), null);
});
