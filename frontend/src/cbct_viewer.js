// The CBCT / CT viewer: axial, coronal and sagittal planes of a series side by side with linked
// crosshairs, scrolling, window/level presets and drag, zoom, pan, distance and angle in mm.
// Cornerstone3D (the engine of OHIF) loads the volume through CaseBridge's own WADO-RS: the series
// metadata once, then the middle slice by its frames request and every instance in one streamed
// request (a slice it cannot take from there by its own frames request), under the same policy
// and audit. Uncompressed slices become images on the page (native_slice.js); the rest go
// through the DICOM image loader's decoder workers.
import {
  RenderingEngine,
  Enums,
  setVolumesForViewports,
  volumeLoader,
  eventTarget,
  imageLoadPoolManager,
  registerImageLoader,
  utilities,
} from "@cornerstonejs/core";
import dicomImageLoader from "@cornerstonejs/dicom-image-loader";
import * as tools from "@cornerstonejs/tools";
import { choosePrimary, createToolGroup, initCornerstone, measurementOf } from "./cornerstone_setup.js";
import { nativeSliceImage } from "./native_slice.js";

const root = document.getElementById("cbct-viewer");
const config = JSON.parse(document.getElementById("cbct-config").textContent);
const statusLine = root.querySelector("[data-status]");
const measureLine = root.querySelector("[data-measurement]");
const PRESETS = {
  bone: [400, 1800],
  "soft tissue": [40, 400],
  implant: [800, 3000],
};
const VIEWPORTS = [
  ["axial", Enums.OrientationAxis.AXIAL],
  ["coronal", Enums.OrientationAxis.CORONAL],
  ["sagittal", Enums.OrientationAxis.SAGITTAL],
];
const engineId = "casebridge-cbct";
const volumeId = `cornerstoneStreamingImageVolume:${config.series}`;
const toolGroupId = "casebridge-cbct-tools";
const RENDER_EVERY_MS = 500;

function seriesUrl() {
  return `${location.origin}${config.wadoRoot}/studies/${config.study}/series/${config.series}`;
}

// The series' pixels arrive in one request (WADO-RS retrieve series: every instance as a Part 10
// file in one multipart/related stream, one authorization and no audit event beyond the opening's)
// rather than a request per slice. Each slice's loader waits for its instance in the stream; one
// the stream cannot give (compressed, multi-frame, or the stream failed) is fetched on its own by
// WADO-RS frames, as before.
const NATIVE_LITTLE_ENDIAN = new Set(["1.2.840.10008.1.2", "1.2.840.10008.1.2.1"]);
const SCHEME = "cbseries";

class SeriesStream {
  constructor() {
    this.slots = new Map();
    this.expected = new Map(); // SOP Instance UID -> [pixel bytes, transfer syntax] of a streamable slice
    this.madeOnPage = 0; // slices made into images by native_slice.js rather than the loader
  }

  slot(sop) {
    let slot = this.slots.get(sop);
    if (!slot) {
      slot = {};
      slot.promise = new Promise((resolve) => {
        slot.resolve = resolve;
      });
      this.slots.set(sop, slot);
    }
    return slot;
  }

  // The pixel data of a native little-endian Part 10 file: found where its tag is followed by
  // exactly the length the metadata predicts (explicit VR OW/OB or implicit VR), looked for at
  // the end of the file first, where it nearly always is.
  pixels(sop, file) {
    const wanted = this.expected.get(sop);
    if (!wanted) return null;
    const [length] = wanted;
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

  deliver(sop, file) {
    const pixelData = this.pixels(sop, file);
    if (pixelData) this.slot(sop).resolve({ pixelData, transferSyntax: this.expected.get(sop)[1] });
  }

  // Whatever the stream did not bring is fetched slice by slice.
  end() {
    for (const sop of this.expected.keys()) this.slot(sop).resolve(null);
  }

  async run(url) {
    root.dataset.streamStartMs = String(Math.round(performance.now()));
    try {
      await multipart(url, 'multipart/related; type="application/dicom"', (headers, file) => {
        const sop = instanceUid(file);
        if (sop) this.deliver(sop, file);
      });
    } catch (error) {
      console.warn("the series stream stopped; the rest comes slice by slice", error);
    } finally {
      root.dataset.streamEndMs = String(Math.round(performance.now()));
      this.end();
    }
  }

  // One slice's pixels by its own frames request (the first one the viewer shows), delivered
  // like a streamed slice; when the request fails the slice waits for the stream instead.
  async frame(sop, url) {
    const wanted = this.expected.get(sop);
    if (!wanted) return;
    try {
      await multipart(url, 'multipart/related; type="application/octet-stream"; transfer-syntax=*', (headers, body) => {
        const syntax = /transfer-syntax="?([0-9.]+)/i.exec(headers)?.[1];
        if (NATIVE_LITTLE_ENDIAN.has(syntax) && body.length === wanted[0]) {
          this.slot(sop).resolve({ pixelData: body, transferSyntax: syntax });
        }
        return false; // one part is all it has
      });
    } catch (error) {
      console.warn("the first slice's request failed; it comes with the rest", error);
    }
  }
}

const stream = new SeriesStream();

// The parts of a multipart/related answer whose parts each carry a Content-Length (CaseBridge's
// always do), each given to `onPart(headers, body)` as it completes; onPart returns false to stop.
async function multipart(url, accept, onPart) {
  const response = await fetch(url, { credentials: "same-origin", headers: { Accept: accept } });
  const boundary = /boundary="?([^";]+)"?/.exec(response.headers.get("Content-Type") || "");
  if (!response.ok || !boundary) return;
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
    const body = buffer.slice(start, end); // its own memory: a decoder may take it over
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
function instanceUid(file) {
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

// A slice's image: made on the page from the streamed bytes when native_slice.js can make it
// exactly, else decoded by the loader from them, else (the stream did not bring it) fetched on
// its own.
function streamedImage(imageId, options) {
  const sop = /\/instances\/([0-9.]+)\/frames\//.exec(imageId)[1];
  const wadors = `wadors:${imageId.slice(SCHEME.length + 1)}`;
  const promise = stream.slot(sop).promise.then(async (part) => {
    if (!part) return dicomImageLoader.wadors.loadImage(wadors, options).promise;
    let image = nativeSliceImage(imageId, part.pixelData, options);
    if (image) stream.madeOnPage += 1;
    else image = await dicomImageLoader.createImage(imageId, part.pixelData, part.transferSyntax, options);
    // What the loader's own WADO-RS path marks: this is the slice at full resolution.
    image.imageQualityStatus = Enums.ImageQualityStatus.FULL_RESOLUTION;
    return image;
  });
  return { promise, cancelFn: undefined };
}

async function seriesMetadata() {
  const response = await fetch(`${seriesUrl()}/metadata`, {
    credentials: "same-origin",
    headers: { Accept: "application/dicom+json" },
  });
  if (!response.ok) throw new Error(`the server answered ${response.status}`);
  return response.json();
}

// Every frame of the series as { sop, path, meta }, in the server's order; the stream learns
// which instances it can give and how long their pixel data is.
function seriesFrames(instances) {
  const frames = [];
  for (const meta of instances) {
    const sop = meta["00080018"].Value[0];
    const count = Number(meta["00280008"]?.Value?.[0] || 1);
    const syntax = meta["00083002"]?.Value?.[0];
    if (count === 1 && NATIVE_LITTLE_ENDIAN.has(syntax)) {
      const value = (tag, fallback) => Number(meta[tag]?.Value?.[0] ?? fallback);
      const length =
        (value("00280010", 0) * value("00280011", 0) * value("00280002", 1) * value("00280100", 16)) / 8;
      stream.expected.set(sop, [length, syntax]);
    }
    for (let frame = 1; frame <= count; frame += 1) {
      frames.push({ sop, path: `${seriesUrl()}/instances/${sop}/frames/${frame}`, meta });
    }
  }
  return frames;
}

// As soon as the metadata is in (Cornerstone may still be starting): the middle slice, the one
// the axial view opens on, by its own small frames request, and the series stream for the rest.
function startFetching(frames) {
  const middle = frames[middleFirst(frames.length)[0]];
  if (middle) stream.frame(middle.sop, middle.path);
  stream.run(seriesUrl());
}

function imageIds(frames) {
  return frames.map(({ sop, path, meta }) => {
    const id = stream.expected.has(sop) ? `${SCHEME}:${path}` : `wadors:${path}`;
    dicomImageLoader.wadors.metaDataManager.add(id, meta);
    dicomImageLoader.wadors.metaDataManager.add(`wadors:${path}`, meta);
    return id;
  });
}

function setupTools(viewportIds) {
  const { CrosshairsTool, LengthTool, AngleTool } = tools;
  return createToolGroup(toolGroupId, engineId, viewportIds, [CrosshairsTool, LengthTool, AngleTool]);
}

// The order slices are asked for: the middle one first (it has its own request, and the axial
// view opens on it, so the first slice to arrive is the one on screen), then every other in the
// order the series stream brings them. Waiting for the stream costs no connection, so many wait
// at once.
function middleFirst(count) {
  const middle = Math.floor((count - 1) / 2);
  return [middle, ...Array.from({ length: count }, (_, i) => i).filter((i) => i !== middle)];
}

function fetchOrder(ids) {
  const order = middleFirst(ids.length);
  utilities.imageRetrieveMetadataProvider.add(volumeId, {
    stages: [
      {
        id: "middleFirst",
        positions: order,
        retrieveType: "default",
        requestType: Enums.RequestType.Thumbnail,
        priority: 5,
      },
    ],
  });
  imageLoadPoolManager.setMaxSimultaneousRequests(Enums.RequestType.Thumbnail, 32);
}

async function main() {
  // Asked for at once: the metadata, then the pixels, travel while Cornerstone starts.
  const frames = seriesMetadata().then((instances) => {
    root.dataset.metadataMs = String(Math.round(performance.now()));
    const all = seriesFrames(instances);
    startFetching(all);
    return all;
  });
  frames.catch(() => {}); // awaited below, where a failure is reported
  await initCornerstone(root.dataset.wasm, 2);
  const ids = imageIds(await frames);
  root.dataset.slices = String(ids.length);
  fetchOrder(ids);
  registerImageLoader(SCHEME, streamedImage);
  statusLine.textContent = `Loading ${ids.length} slices…`;

  const engine = new RenderingEngine(engineId);
  const viewportIds = [];
  for (const [name, orientation] of VIEWPORTS) {
    const element = root.querySelector(`[data-plane="${name}"]`);
    element.oncontextmenu = (event) => event.preventDefault();
    engine.enableElement({
      viewportId: name,
      type: Enums.ViewportType.ORTHOGRAPHIC,
      element,
      defaultOptions: { orientation, background: [0, 0, 0] },
    });
    viewportIds.push(name);
  }
  const volume = await volumeLoader.createAndCacheVolume(volumeId, { imageIds: ids });
  // While slices arrive the planes are drawn at once for the first and then at most every
  // RENDER_EVERY_MS (each draw uploads the slices that came since), not every few slices as
  // Cornerstone would: three planes drawn 50 times over cost the loading more than they show.
  // The axial plane shows the middle slice: once that slice is in, later ones do not change it,
  // so only the coronal and sagittal planes, which fill in as slices arrive, are drawn again.
  volume.autoRenderOnLoad = false;
  const middleId = ids[middleFirst(ids.length)[0]];
  const filling = viewportIds.filter((id) => id !== "axial");
  let middleLoaded = false;
  let axialDrawn = false; // with the middle slice in
  let drawPending = false;
  let lastDraw = -Infinity;
  const drawSoon = () => {
    if (drawPending) return;
    drawPending = true;
    setTimeout(
      () => {
        drawPending = false;
        lastDraw = performance.now();
        if (root.dataset.state === "ready") return; // the last draw is the completion's
        engine.renderViewports(axialDrawn ? filling : viewportIds);
        axialDrawn = middleLoaded;
      },
      Math.max(0, lastDraw + RENDER_EVERY_MS - performance.now()),
    );
  };
  root.querySelector('[data-plane="axial"]').addEventListener(Enums.Events.IMAGE_RENDERED, () => {
    if (root.dataset.firstSliceMs && !root.dataset.firstDrawnMs) {
      root.dataset.firstDrawnMs = String(Math.round(performance.now()));
    }
  });
  let loaded = 0;
  eventTarget.addEventListener(Enums.Events.IMAGE_LOADED, (event) => {
    loaded += 1;
    if (event.detail?.image?.imageId === middleId) middleLoaded = true;
    if (root.dataset.state === "ready") return;
    statusLine.textContent = `Loaded ${Math.min(loaded, ids.length)} of ${ids.length} slices`;
    if (loaded === 1) root.dataset.firstSliceMs = String(Math.round(performance.now()));
    drawSoon();
  });
  eventTarget.addEventListener(Enums.Events.IMAGE_VOLUME_LOADING_COMPLETED, () => {
    statusLine.textContent = `${ids.length} slices loaded.`;
    root.dataset.state = "ready";
    root.dataset.loadedMs = String(Math.round(performance.now()));
    root.dataset.slicesMadeOnPage = String(stream.madeOnPage);
    engine.renderViewports(viewportIds);
  });
  volume.load();
  await setVolumesForViewports(engine, [{ volumeId }], viewportIds);
  const group = setupTools(viewportIds);
  engine.renderViewports(viewportIds);

  const setWindow = ([center, width]) => {
    for (const id of viewportIds) {
      const viewport = engine.getViewport(id);
      viewport.setProperties({ voiRange: { lower: center - width / 2, upper: center + width / 2 } });
      viewport.render();
    }
  };
  root.querySelector("[data-preset]").addEventListener("change", (event) => setWindow(PRESETS[event.target.value]));
  for (const button of root.querySelectorAll("[data-tool]")) {
    button.addEventListener("click", () => choosePrimary(root, group, button.dataset.tool));
  }
  root.querySelector("[data-reset]").addEventListener("click", () => {
    for (const id of viewportIds) engine.getViewport(id).resetCamera();
    setWindow(PRESETS.bone);
  });
  root.querySelector("[data-fullscreen]").addEventListener("click", () => {
    if (document.fullscreenElement) document.exitFullscreen();
    else root.requestFullscreen();
  });
  for (const element of root.querySelectorAll("[data-plane]")) {
    element.addEventListener("keydown", (event) => {
      const step = { ArrowUp: -1, ArrowDown: 1, PageUp: -10, PageDown: 10 }[event.key];
      if (step === undefined) return;
      event.preventDefault();
      const viewport = engine.getViewport(element.dataset.plane);
      utilities.scroll(viewport, { delta: step, volumeId });
    });
  }
  eventTarget.addEventListener(tools.Enums.Events.ANNOTATION_COMPLETED, (event) => {
    const measured = measurementOf(event.detail.annotation);
    if (measured?.kind === "length") {
      measureLine.textContent = `Distance: ${measured.value.toFixed(1)} mm`;
      root.dataset.measuredMm = measured.value.toFixed(2);
    } else if (measured?.kind === "angle") {
      measureLine.textContent = `Angle: ${measured.value.toFixed(1)}°`;
    }
  });
  setWindow(PRESETS.bone);
  window.caseBridgeViewer = { engine, viewportIds, volumeId, volume };
}

main().catch((error) => {
  statusLine.textContent = `The study could not be shown: ${error.message}`;
  root.dataset.state = "failed";
});
