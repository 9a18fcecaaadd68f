// The CBCT / CT viewer: axial, coronal and sagittal planes of a series side by side with linked
// crosshairs, scrolling, window/level presets and drag, zoom, pan, distance and angle in mm.
// Cornerstone3D (the engine of OHIF) streams the volume slice by slice through CaseBridge's own
// WADO-RS: the series metadata once, then each slice's frame, under the same policy and audit.
import {
  RenderingEngine,
  Enums,
  init as coreInit,
  setVolumesForViewports,
  volumeLoader,
  eventTarget,
  imageLoadPoolManager,
  utilities,
} from "@cornerstonejs/core";
import dicomImageLoader from "@cornerstonejs/dicom-image-loader";
import * as tools from "@cornerstonejs/tools";

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

function seriesUrl() {
  return `${location.origin}${config.wadoRoot}/studies/${config.study}/series/${config.series}`;
}

async function imageIds() {
  const response = await fetch(`${seriesUrl()}/metadata`, {
    credentials: "same-origin",
    headers: { Accept: "application/dicom+json" },
  });
  if (!response.ok) throw new Error(`the server answered ${response.status}`);
  const instances = await response.json();
  const ids = [];
  for (const meta of instances) {
    const sop = meta["00080018"].Value[0];
    const frames = Number(meta["00280008"]?.Value?.[0] || 1);
    for (let frame = 1; frame <= frames; frame += 1) {
      const id = `wadors:${seriesUrl()}/instances/${sop}/frames/${frame}`;
      dicomImageLoader.wadors.metaDataManager.add(id, meta);
      ids.push(id);
    }
  }
  return ids;
}

function setupTools(viewportIds) {
  const {
    ToolGroupManager,
    Enums: toolEnums,
    CrosshairsTool,
    WindowLevelTool,
    PanTool,
    ZoomTool,
    StackScrollTool,
    LengthTool,
    AngleTool,
  } = tools;
  for (const tool of [CrosshairsTool, WindowLevelTool, PanTool, ZoomTool, StackScrollTool, LengthTool, AngleTool]) {
    tools.addTool(tool);
  }
  const group = ToolGroupManager.createToolGroup(toolGroupId);
  for (const id of viewportIds) group.addViewport(id, engineId);
  for (const tool of [CrosshairsTool, WindowLevelTool, PanTool, ZoomTool, StackScrollTool, LengthTool, AngleTool]) {
    group.addTool(tool.toolName);
  }
  const { MouseBindings } = toolEnums;
  group.setToolActive(WindowLevelTool.toolName, { bindings: [{ mouseButton: MouseBindings.Primary }] });
  group.setToolActive(PanTool.toolName, { bindings: [{ mouseButton: MouseBindings.Auxiliary }] });
  group.setToolActive(ZoomTool.toolName, { bindings: [{ mouseButton: MouseBindings.Secondary }] });
  group.setToolActive(StackScrollTool.toolName, { bindings: [{ mouseButton: MouseBindings.Wheel }] });
  group.setToolPassive(LengthTool.toolName);
  group.setToolPassive(AngleTool.toolName);
  group.setToolPassive(CrosshairsTool.toolName);
  return group;
}

function choosePrimary(group, toolName) {
  const { MouseBindings } = tools.Enums;
  for (const name of ["WindowLevel", "Crosshairs", "Length", "Angle"]) {
    if (name !== toolName) group.setToolPassive(name);
  }
  group.setToolActive(toolName, { bindings: [{ mouseButton: MouseBindings.Primary }] });
  for (const button of root.querySelectorAll("[data-tool]")) {
    button.setAttribute("aria-pressed", String(button.dataset.tool === toolName));
  }
  root.dataset.tool = toolName;
}

// Slices in the order they are fetched: the middle one first (the axial view opens on it, so
// the first slice to arrive is the one on screen), then outwards from it, six in flight at once
// (a browser's connections per host) on keep-alive connections.
function middleOut(count) {
  const middle = Math.floor((count - 1) / 2);
  return Array.from({ length: count }, (_, i) => i).sort(
    (a, b) => Math.abs(a - middle) - Math.abs(b - middle) || a - b,
  );
}

function fetchMiddleOut(count) {
  utilities.imageRetrieveMetadataProvider.add(volumeId, {
    stages: [
      {
        id: "middleOut",
        positions: middleOut(count),
        retrieveType: "default",
        requestType: Enums.RequestType.Thumbnail,
        priority: 5,
      },
    ],
  });
  imageLoadPoolManager.setMaxSimultaneousRequests(Enums.RequestType.Thumbnail, 6);
}

async function main() {
  await coreInit();
  dicomImageLoader.init({ maxWebWorkers: 2, wasmBasePath: root.dataset.wasm });
  tools.init();
  const ids = await imageIds();
  root.dataset.metadataMs = String(Math.round(performance.now()));
  root.dataset.slices = String(ids.length);
  fetchMiddleOut(ids.length);
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
    button.addEventListener("click", () => choosePrimary(group, button.dataset.tool));
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
    const { annotation } = event.detail;
    const stats = Object.values(annotation.data.cachedStats || {})[0] || {};
    if (stats.length !== undefined) {
      measureLine.textContent = `Distance: ${stats.length.toFixed(1)} mm`;
      root.dataset.measuredMm = stats.length.toFixed(2);
    } else if (stats.angle !== undefined) {
      measureLine.textContent = `Angle: ${stats.angle.toFixed(1)}°`;
    }
  });
  setWindow(PRESETS.bone);
  window.caseBridgeViewer = { engine, viewportIds, volumeId };
}

main().catch((error) => {
  statusLine.textContent = `The study could not be shown: ${error.message}`;
  root.dataset.state = "failed";
});
