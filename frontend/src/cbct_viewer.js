// The CBCT / CT viewer: axial, coronal and sagittal planes of a series side by side with linked
// crosshairs, scrolling, window/level presets and drag, zoom, pan, distance and angle in mm.
// Cornerstone3D (the engine of OHIF) streams the volume slice by slice through CaseBridge's own
// WADO-RS: the series metadata once, then each slice's frame, under the same policy and audit.
import {
  RenderingEngine,
  Enums,
  setVolumesForViewports,
  volumeLoader,
  eventTarget,
  utilities,
} from "@cornerstonejs/core";
import * as tools from "@cornerstonejs/tools";
import { choosePrimary, createToolGroup, initCornerstone, measurementOf, seriesImageIds } from "./cornerstone_setup.js";

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

function setupTools(viewportIds) {
  const { CrosshairsTool, LengthTool, AngleTool } = tools;
  return createToolGroup(toolGroupId, engineId, viewportIds, [CrosshairsTool, LengthTool, AngleTool]);
}

async function main() {
  await initCornerstone(root.dataset.wasm);
  const ids = await seriesImageIds(config.wadoRoot, config.study, config.series);
  root.dataset.slices = String(ids.length);
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
  let loaded = 0;
  eventTarget.addEventListener(Enums.Events.IMAGE_LOADED, () => {
    loaded += 1;
    if (root.dataset.state === "ready") return;
    statusLine.textContent = `Loaded ${Math.min(loaded, ids.length)} of ${ids.length} slices`;
    if (loaded === 1) root.dataset.firstSliceMs = String(Math.round(performance.now()));
  });
  eventTarget.addEventListener(Enums.Events.IMAGE_VOLUME_LOADING_COMPLETED, () => {
    statusLine.textContent = `${ids.length} slices loaded.`;
    root.dataset.state = "ready";
    root.dataset.loadedMs = String(Math.round(performance.now()));
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
  window.caseBridgeViewer = { engine, viewportIds, volumeId };
}

main().catch((error) => {
  statusLine.textContent = `The study could not be shown: ${error.message}`;
  root.dataset.state = "failed";
});
