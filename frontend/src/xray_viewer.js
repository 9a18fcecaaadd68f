// The 2D X-ray viewer: a case's panoramic, cephalometric and intraoral images one at a time in a
// Cornerstone3D stack viewport, with window/level (drag and presets), zoom and pan, distance in
// mm from the pixel spacing (DICOM) or in pixels (a plain image has no calibration), invert,
// reset, and a strip of the whole set to step through by mouse or keyboard.
// DICOM images load through our WADO-RS (cornerstone_setup.js, as in the CBCT viewer); JPEG, PNG
// and TIFF X-rays through the case's image endpoint, as greyscale for window/level to work on.
import { RenderingEngine, Enums, eventTarget, imageLoader, utilities } from "@cornerstonejs/core";
import * as tools from "@cornerstonejs/tools";
import { choosePrimary, createToolGroup, initCornerstone, measurementOf, seriesInstances } from "./cornerstone_setup.js";

const root = document.getElementById("xray-viewer");
const config = JSON.parse(document.getElementById("xray-config").textContent);
const statusLine = root.querySelector("[data-status]");
const measureLine = root.querySelector("[data-measurement]");
const element = root.querySelector("[data-image]");
const strip = root.querySelector("[data-strip]");
const engineId = "casebridge-xray";
const viewportId = "xray";
const toolGroupId = "casebridge-xray-tools";
// Presets as parts of the image's own value range, so they suit 8-bit photos of films and
// 12- or 16-bit sensor images alike: [centre, width] as fractions of (max - min).
const PRESETS = {
  default: null,
  "full range": [0.5, 1.0],
  "high contrast": [0.55, 0.45],
  enamel: [0.8, 0.35],
};

const items = config.items;
const imageIds = new Array(items.length);
let current = -1;

// A plain image as a greyscale Cornerstone image: decoded by the browser, its luminance kept.
async function plainImage(item, index) {
  const response = await fetch(item.url, { credentials: "same-origin" });
  if (!response.ok) throw new Error(`the server answered ${response.status}`);
  const bitmap = await createImageBitmap(await response.blob());
  const canvas = document.createElement("canvas");
  canvas.width = bitmap.width;
  canvas.height = bitmap.height;
  const context = canvas.getContext("2d", { willReadFrequently: true });
  context.drawImage(bitmap, 0, 0);
  const rgba = context.getImageData(0, 0, bitmap.width, bitmap.height).data;
  const grey = new Uint8Array(bitmap.width * bitmap.height);
  for (let i = 0, p = 0; i < grey.length; i += 1, p += 4) {
    grey[i] = Math.round(0.299 * rgba[p] + 0.587 * rgba[p + 1] + 0.114 * rgba[p + 2]);
  }
  const id = `casebridge-plain:${index}`;
  const image = imageLoader.createAndCacheLocalImage(id, {
    scalarData: grey,
    dimensions: [bitmap.width, bitmap.height],
    spacing: [1, 1],
    origin: [0, 0, 0],
    direction: [1, 0, 0, 0, 1, 0],
    frameOfReferenceUID: id,
  });
  // The stack viewport reads the modality of every image it shows ("OT": other, a plain
  // picture) and its window (the whole 0-255 range: without one its grey ramp comes out reversed).
  utilities.genericMetadataProvider.add(id, { type: "generalSeriesModule", metadata: { modality: "OT" } });
  utilities.genericMetadataProvider.add(id, { type: "voiLutModule", metadata: { windowCenter: [127.5], windowWidth: [256] } });
  image.windowCenter = 127.5;
  image.windowWidth = 256;
  bitmap.close();
  return id;
}

// Projection radiographs (panoramic, intraoral) have no patient position or orientation: the
// DX and IO objects do not require them. Cornerstone then takes the whole plane as unknown and
// measures in pixels although the file gives the pixel spacing: an image without them lies
// flat at the origin, which is what it is.
function completePlane(meta) {
  const spacing = meta["00280030"]?.Value || meta["00181164"]?.Value;
  if (!spacing) return;
  meta["00200032"] ||= { vr: "DS", Value: [0, 0, 0] };
  meta["00200037"] ||= { vr: "DS", Value: [1, 0, 0, 0, 1, 0] };
}

// The image ids of every item: DICOM ones from their series' metadata (one request per series),
// plain ones once fetched (prepare(), on first showing).
async function dicomImageIds() {
  const bySeries = new Map();
  for (const [index, item] of items.entries()) {
    if (item.kind !== "dicom") continue;
    const key = `${item.study}/${item.series}`;
    if (!bySeries.has(key)) bySeries.set(key, seriesInstances(config.wadoRoot, item.study, item.series, completePlane));
    const instance = (await bySeries.get(key)).find((found) => found.sop === item.instance);
    if (!instance) throw new Error("an image of the set is missing");
    imageIds[index] = instance.imageIds[Math.floor((instance.imageIds.length - 1) / 2)];
  }
}

async function prepare(index) {
  if (imageIds[index] === undefined) imageIds[index] = await plainImage(items[index], index);
  return imageIds[index];
}

function describe(index) {
  const item = items[index];
  const calibration = item.calibrated ? "calibrated from the pixel spacing" : "uncalibrated: distances in pixels";
  return `${item.label}, image ${index + 1} of ${items.length} (${calibration})`;
}

async function main() {
  if (!items.length) {
    statusLine.textContent = "This case has no X-rays.";
    root.dataset.state = "ready";
    return;
  }
  await initCornerstone(root.dataset.wasm);
  await dicomImageIds();
  const engine = new RenderingEngine(engineId);
  element.oncontextmenu = (event) => event.preventDefault();
  engine.enableElement({ viewportId, type: Enums.ViewportType.STACK, element, defaultOptions: { background: [0, 0, 0] } });
  const viewport = engine.getViewport(viewportId);
  const { LengthTool } = tools;
  const group = createToolGroup(toolGroupId, engineId, [viewportId], [LengthTool]);
  // The wheel zooms here (one image at a time; the strip and the keys change images).
  group.setToolPassive(tools.StackScrollTool.toolName);

  // The stack viewport takes the first value of each property ever set as the default of every
  // image it shows later (an image after an inverted one would open inverted, its window that of
  // another modality): here each image starts from its own, so no defaults are kept.
  function setProperties(properties) {
    viewport.setProperties(properties);
    viewport.setDefaultProperties({});
  }

  const buttons = [...strip.querySelectorAll("button")];
  async function show(index) {
    index = Math.max(0, Math.min(items.length - 1, index));
    if (index === current) return;
    root.dataset.state = "loading";
    const id = await prepare(index);
    // Leave the current image upright first: the viewport keeps its "inverted" flag across a
    // new stack but not the inverted grey ramp, and would then never invert the next image.
    if (current >= 0) setProperties({ invert: false });
    await viewport.setStack([id], 0);
    // Each image with its own window (the previous image's would carry over): the file's own
    // for DICOM, the whole 0-255 range for a plain image, which has none.
    root.querySelector("[data-preset]").value = "default";
    setPreset("default", index);
    viewport.render();
    current = index;
    for (const [i, button] of buttons.entries()) {
      button.setAttribute("aria-current", String(i === index));
      button.tabIndex = i === index ? 0 : -1;
    }
    root.dataset.index = String(index);
    root.dataset.calibrated = String(items[index].calibrated);
    statusLine.textContent = describe(index);
    measureLine.textContent = "";
    root.dataset.state = "ready";
  }

  function setPreset(name, index = current) {
    const fractions = PRESETS[name];
    if (!fractions) {
      viewport.resetProperties();
      if (items[index].kind === "image") {
        setProperties({ voiRange: { lower: 0, upper: 255 } });
      }
    } else {
      const image = viewport.getCornerstoneImage();
      const low = image.minPixelValue;
      const span = Math.max(1, image.maxPixelValue - low);
      const [centre, width] = [low + fractions[0] * span, fractions[1] * span];
      setProperties({ voiRange: { lower: centre - width / 2, upper: centre + width / 2 } });
    }
    applyInvert(root.dataset.inverted === "true");
    viewport.render();
  }

  // Set, not toggled: after a new image or a reset of its properties the viewport may still say
  // it is inverted while its grey ramp is not, and would skip setting the same value again.
  function applyInvert(inverted) {
    setProperties({ invert: !inverted });
    setProperties({ invert: inverted });
  }

  function zoomBy(factor) {
    viewport.setZoom(viewport.getZoom() * factor);
    viewport.render();
    root.dataset.zoom = viewport.getZoom().toFixed(3);
  }

  root.querySelector("[data-preset]").addEventListener("change", (event) => setPreset(event.target.value));
  for (const button of root.querySelectorAll("[data-tool]")) {
    button.addEventListener("click", () => choosePrimary(root, group, button.dataset.tool));
  }
  root.querySelector("[data-zoom-in]").addEventListener("click", () => zoomBy(1.25));
  root.querySelector("[data-zoom-out]").addEventListener("click", () => zoomBy(0.8));
  const invertButton = root.querySelector("[data-invert]");
  invertButton.addEventListener("click", () => {
    const inverted = root.dataset.inverted !== "true";
    root.dataset.inverted = String(inverted);
    invertButton.setAttribute("aria-pressed", String(inverted));
    applyInvert(inverted);
    viewport.render();
  });
  root.querySelector("[data-reset]").addEventListener("click", () => {
    root.dataset.inverted = "false";
    invertButton.setAttribute("aria-pressed", "false");
    root.querySelector("[data-preset]").value = "default";
    viewport.resetCamera();
    setPreset("default");
    root.dataset.zoom = viewport.getZoom().toFixed(3);
  });
  root.querySelector("[data-fullscreen]").addEventListener("click", () => {
    if (document.fullscreenElement) document.exitFullscreen();
    else root.requestFullscreen();
  });

  // The strip: a click shows an image; arrows, Home and End move along it (roving focus).
  const steps = { ArrowLeft: -1, ArrowRight: 1, ArrowUp: -1, ArrowDown: 1, PageUp: -1, PageDown: 1 };
  function keyTarget(event) {
    if (event.key in steps) return current + steps[event.key];
    if (event.key === "Home") return 0;
    if (event.key === "End") return items.length - 1;
    return null;
  }
  for (const [index, button] of buttons.entries()) {
    button.addEventListener("click", () => show(index));
  }
  strip.addEventListener("keydown", (event) => {
    const target = keyTarget(event);
    if (target === null) return;
    event.preventDefault();
    show(target).then(() => buttons[current].focus());
  });
  element.addEventListener("keydown", (event) => {
    const target = keyTarget(event);
    if (target === null) return;
    event.preventDefault();
    show(target);
  });

  eventTarget.addEventListener(tools.Enums.Events.ANNOTATION_COMPLETED, (event) => {
    const measured = measurementOf(event.detail.annotation);
    if (measured?.kind !== "length") return;
    // Cornerstone says "mm PROJECTION" for a radiograph's spacing at the detector (no
    // magnification correction in the file), "mm ERMF" when corrected, "px" without any.
    const calibrated = items[current].calibrated && measured.unit.startsWith("mm");
    const unit = calibrated ? "mm" : "px";
    const note = !calibrated ? " (uncalibrated)" : measured.unit.includes("PROJECTION") ? " (at the detector)" : "";
    measureLine.textContent = `Distance: ${measured.value.toFixed(1)} ${unit}${note}`;
    root.dataset.measured = measured.value.toFixed(2);
    root.dataset.measuredUnit = unit;
  });

  await show(0);
  root.dataset.zoom = viewport.getZoom().toFixed(3);
  window.caseBridgeViewer = { engine, viewportId };
}

main().catch((error) => {
  statusLine.textContent = `The X-rays could not be shown: ${error.message}`;
  root.dataset.state = "failed";
});
