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
import { multipart } from "./multipart.js";
import { imageFromValues, nativeSliceImage } from "./native_slice.js";
import { pixelLength, recipeOf, sameRecipe, sliceInfo } from "./slice_values.js";

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
const RENDER_EVERY_MS = 1000;
const FIRST_SLICE_WAIT_MS = 400;

function seriesUrl() {
  return `${location.origin}${config.wadoRoot}/studies/${config.study}/series/${config.series}`;
}

// The series' pixels arrive in one request (WADO-RS retrieve series: every instance as a Part 10
// file in one multipart/related stream, one authorization and no audit event beyond the opening's)
// rather than a request per slice, read in a worker (series_stream_worker.js) that makes each
// slice's numbers for the volume and hands them over. Each slice's loader waits for its instance
// from there; one the stream cannot give (compressed, multi-frame, or the stream failed) is
// fetched on its own by WADO-RS frames, as before.
const NATIVE_LITTLE_ENDIAN = new Set(["1.2.840.10008.1.2", "1.2.840.10008.1.2.1"]);
const SCHEME = "cbseries";

class SeriesStream {
  constructor() {
    this.slots = new Map();
    this.expected = new Map(); // SOP Instance UID -> sliceInfo of a streamable slice, with its syntax
    this.madeOnPage = 0; // slices made into images here rather than by the loader's decoder
    this.recipe = null; // what the volume asked of the slices, as the worker was told
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

  // Whatever the stream did not bring is fetched slice by slice (the first slice's own request,
  // still on its way, settles its slice itself).
  end() {
    this.ended = true;
    for (const sop of this.expected.keys()) if (sop !== this.ownRequest) this.slot(sop).resolve(null);
  }

  // The worker starts as the page opens; the stream is asked for once the metadata is in (describe:
  // with the slices to expect), just after the first slice's own request, which it would otherwise
  // slow; the volume's wishes follow when it loads (ask).
  open(url) {
    this.worker = new Worker(root.dataset.streamWorker);
    this.worker.onmessage = ({ data }) => {
      if (data.end) {
        root.dataset.streamEndMs = String(Math.round(performance.now()));
        if (data.error) console.warn("the series stream stopped; the rest comes slice by slice", data.error);
        this.close();
        this.end();
      } else if (this.expected.has(data.sop)) {
        const transferSyntax = this.expected.get(data.sop).transferSyntax;
        this.slot(data.sop).resolve({ values: data.values, pixelData: data.pixelData, transferSyntax });
      }
    };
    this.worker.onerror = (event) => {
      console.warn("the series stream's worker failed; the rest comes slice by slice", event.message);
      this.close();
      this.end();
    };
    this.url = url;
  }

  describe() {
    if (!this.expected.size) {
      this.close(); // nothing it could give: every slice comes by its own request
      return;
    }
    root.dataset.streamStartMs = String(Math.round(performance.now()));
    this.worker?.postMessage({ start: this.url, slices: Object.fromEntries(this.expected) });
  }

  close() {
    this.worker?.terminate();
    this.worker = null;
  }

  // The volume's loader options, the same for every slice: the worker makes the numbers for them.
  ask(options) {
    if (this.recipe) return;
    this.recipe = recipeOf(options);
    this.worker?.postMessage({ recipe: this.recipe });
  }

  // One slice's pixels by its own frames request (the first one the viewer shows), delivered
  // like a streamed slice; when the request fails the slice waits for the stream instead.
  async frame(sop, url) {
    const wanted = this.expected.get(sop);
    if (!wanted) return;
    const length = pixelLength(wanted);
    this.ownRequest = sop;
    try {
      await multipart(url, 'multipart/related; type="application/octet-stream"; transfer-syntax=*', (headers, body) => {
        const syntax = /transfer-syntax="?([0-9.]+)/i.exec(headers)?.[1];
        if (NATIVE_LITTLE_ENDIAN.has(syntax) && body.length === length) {
          this.slot(sop).resolve({ pixelData: body, transferSyntax: syntax });
        }
        return false; // one part is all it has
      });
    } catch (error) {
      console.warn("the first slice's request failed; it comes with the rest", error);
    } finally {
      this.ownRequest = null;
      if (this.ended) this.slot(sop).resolve(null); // neither brought it: the loader fetches it
    }
  }
}

const stream = new SeriesStream();

// A slice's image: made from the numbers the worker made for this volume, else on the page from
// the bytes (native_slice.js), else decoded by the loader from them, else (the stream did not
// bring it) fetched on its own.
function streamedImage(imageId, options) {
  const sop = /\/instances\/([0-9.]+)\/frames\//.exec(imageId)[1];
  const wadors = `wadors:${imageId.slice(SCHEME.length + 1)}`;
  stream.ask(options);
  const promise = stream.slot(sop).promise.then(async (part) => {
    if (!part) return dicomImageLoader.wadors.loadImage(wadors, options).promise;
    let image = null;
    if (part.values && sameRecipe(stream.recipe, recipeOf(options))) {
      image = imageFromValues(imageId, part.values, options);
    } else if (part.pixelData) {
      image = nativeSliceImage(imageId, part.pixelData, stream.expected.get(sop), options);
    } else {
      return dicomImageLoader.wadors.loadImage(wadors, options).promise; // made for other options
    }
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
      stream.expected.set(sop, { ...sliceInfo(meta), transferSyntax: syntax });
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
  stream.describe();
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
  stream.open(seriesUrl());
  const frames = seriesMetadata().then((instances) => {
    root.dataset.metadataMs = String(Math.round(performance.now()));
    const all = seriesFrames(instances);
    startFetching(all);
    return all;
  });
  frames.catch(() => {}); // awaited below, where a failure is reported
  await initCornerstone(root.dataset.wasm, 2, 1);
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
  let middleIn = () => {};
  const middleArrived = new Promise((resolve) => {
    middleIn = resolve;
  });
  let planesReady = false; // the volume is in the planes: nothing is drawn before
  let axialDrawn = false; // with the middle slice in
  let drawPending = false;
  let lastDraw = -Infinity;
  const draw = () => {
    lastDraw = performance.now();
    engine.renderViewports(axialDrawn ? filling : viewportIds);
    axialDrawn = middleLoaded;
  };
  const drawSoon = () => {
    if (drawPending || !planesReady) return;
    drawPending = true;
    setTimeout(
      () => {
        drawPending = false;
        if (root.dataset.state !== "ready") draw(); // else the last draw is the completion's
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
    if (event.detail?.image?.imageId === middleId) {
      middleLoaded = true;
      middleIn();
    }
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
    if (planesReady) engine.renderViewports(viewportIds);
  });
  volume.load();
  // The slice the axial plane opens on has its own small request, nearly always in by now: it goes
  // into the volume before the planes are first drawn (that first draw sets up the renderer, half
  // a second or more in software WebGL, and would otherwise show them empty and hold it back).
  await Promise.race([middleArrived, new Promise((resolve) => setTimeout(resolve, FIRST_SLICE_WAIT_MS))]);
  await setVolumesForViewports(engine, [{ volumeId }], viewportIds);
  const group = setupTools(viewportIds);

  const setWindow = ([center, width], draw = true) => {
    for (const id of viewportIds) {
      const viewport = engine.getViewport(id);
      viewport.setProperties({ voiRange: { lower: center - width / 2, upper: center + width / 2 } });
      if (draw) viewport.render();
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
  setWindow(PRESETS.bone, false);
  // The first draw: now if slices are in (the middle one, nearly always), else with the first
  // slice to arrive (drawSoon); never of empty planes.
  planesReady = true;
  if (loaded > 0) draw();
  window.caseBridgeViewer = { engine, viewportIds, volumeId, volume };
}

main().catch((error) => {
  stream.close();
  statusLine.textContent = `The study could not be shown: ${error.message}`;
  root.dataset.state = "failed";
});
