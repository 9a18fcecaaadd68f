// The CBCT / CT viewer's engine: axial, coronal and sagittal planes of a series side by side with
// linked crosshairs, scrolling, window/level presets and drag, zoom, pan, distance and angle in mm.
// Cornerstone3D (the engine of OHIF) loads the volume through CaseBridge's own WADO-RS, from what
// the page script (cbct_viewer.js) has set going: the series metadata, the middle slice by its own
// frames request and every instance in one streamed request (series_stream.js; a slice it cannot
// take from there by its own frames request), under the same policy and audit. Uncompressed
// slices become images on the page (native_slice.js); the rest go through the DICOM image
// loader's decoder workers.
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
import { imageFromValues, nativeSliceImage } from "./native_slice.js";
import { middleFirst } from "./series_stream.js";
import { recipeOf, sameRecipe } from "./slice_values.js";

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
const toolGroupId = "casebridge-cbct-tools";
const RENDER_EVERY_MS = 1000;
const FIRST_SLICE_WAIT_MS = 400;

const SCHEME = "cbseries";

// A slice's image: made from the numbers the worker made for this volume, else on the page from
// the bytes (native_slice.js), else decoded by the loader from them, else (the stream did not
// bring it) fetched on its own.
function streamedImage(stream, imageId, options) {
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

function imageIds(stream, frames) {
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

// The slices are asked for middle first (middleFirst), the rest in the order the stream brings
// them; waiting for the stream costs no connection, so many wait at once.
function fetchOrder(volumeId, ids) {
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

// Shows the series in `root` once `frames` (every frame of the series, from its metadata) is in.
export async function show(root, config, stream, frames) {
  const volumeId = `cornerstoneStreamingImageVolume:${config.series}`;
  const statusLine = root.querySelector("[data-status]");
  const measureLine = root.querySelector("[data-measurement]");
  await initCornerstone(root.dataset.wasm, 2, 1);
  const ids = imageIds(stream, await frames);
  root.dataset.slices = String(ids.length);
  fetchOrder(volumeId, ids);
  registerImageLoader(SCHEME, (imageId, options) => streamedImage(stream, imageId, options));
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

