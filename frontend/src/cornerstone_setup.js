// What CaseBridge's Cornerstone3D viewers share (the CBCT viewer, the X-ray viewer): starting the
// engine and its DICOM decoder, image ids of a series read through our own WADO-RS (the series
// metadata once, then each frame as it is shown, under the same policy and audit), the tool group
// with the left button's tool chosen from a toolbar, and how a finished measurement reads.
import { init as coreInit } from "@cornerstonejs/core";
import dicomImageLoader from "@cornerstonejs/dicom-image-loader";
import * as tools from "@cornerstonejs/tools";
import { seriesMetadata, seriesUrl } from "./wado.js";

// `contexts`: WebGL contexts the rendering engine keeps (Cornerstone's default is 7, for stacks spread
// over several; volume viewports all draw in the first, so the CBCT viewer asks for one).
export async function initCornerstone(wasmBasePath, maxWebWorkers = 1, contexts = undefined) {
  await coreInit(contexts ? { rendering: { webGlContextCount: contexts } } : undefined);
  dicomImageLoader.init({ maxWebWorkers, wasmBasePath });
  tools.init();
}

// The series' instances in the server's order, each with the image ids of its frames (the
// decoder learns each frame's header from the metadata: no second request per frame for it).
// `adjust(meta)` may complete an instance's header first.
export async function seriesInstances(wadoRoot, study, series, adjust = () => {}) {
  const url = seriesUrl(wadoRoot, study, series);
  const instances = await seriesMetadata(url);
  return instances.map((meta) => {
    adjust(meta);
    const sop = meta["00080018"].Value[0];
    const frames = Number(meta["00280008"]?.Value?.[0] || 1);
    const imageIds = [];
    for (let frame = 1; frame <= frames; frame += 1) {
      const id = `wadors:${url}/instances/${sop}/frames/${frame}`;
      dicomImageLoader.wadors.metaDataManager.add(id, meta);
      imageIds.push(id);
    }
    return { sop, imageIds };
  });
}

export async function seriesImageIds(wadoRoot, study, series) {
  return (await seriesInstances(wadoRoot, study, series)).flatMap((instance) => instance.imageIds);
}

// A tool group over `viewportIds`: window/level on the left button, pan on the middle, zoom on
// the right, the wheel scrolls; `passive` tools wait for the toolbar to give them the left button.
export function createToolGroup(groupId, engineId, viewportIds, passive) {
  const { ToolGroupManager, Enums: toolEnums, WindowLevelTool, PanTool, ZoomTool, StackScrollTool } = tools;
  const all = [WindowLevelTool, PanTool, ZoomTool, StackScrollTool, ...passive];
  for (const tool of all) tools.addTool(tool);
  const group = ToolGroupManager.createToolGroup(groupId);
  for (const id of viewportIds) group.addViewport(id, engineId);
  for (const tool of all) group.addTool(tool.toolName);
  const { MouseBindings } = toolEnums;
  group.setToolActive(WindowLevelTool.toolName, { bindings: [{ mouseButton: MouseBindings.Primary }] });
  group.setToolActive(PanTool.toolName, { bindings: [{ mouseButton: MouseBindings.Auxiliary }] });
  group.setToolActive(ZoomTool.toolName, { bindings: [{ mouseButton: MouseBindings.Secondary }] });
  group.setToolActive(StackScrollTool.toolName, { bindings: [{ mouseButton: MouseBindings.Wheel }] });
  for (const tool of passive) group.setToolPassive(tool.toolName);
  return group;
}

// Give the left button to `toolName` (one of the toolbar's [data-tool] buttons under `root`).
export function choosePrimary(root, group, toolName) {
  const { MouseBindings } = tools.Enums;
  for (const button of root.querySelectorAll("[data-tool]")) {
    if (button.dataset.tool !== toolName) group.setToolPassive(button.dataset.tool);
  }
  group.setToolActive(toolName, { bindings: [{ mouseButton: MouseBindings.Primary }] });
  for (const button of root.querySelectorAll("[data-tool]")) {
    button.setAttribute("aria-pressed", String(button.dataset.tool === toolName));
  }
  root.dataset.tool = toolName;
}

// A finished measurement: { kind: "length", value, unit } or { kind: "angle", value }; null for
// an annotation that measures nothing.
export function measurementOf(annotation) {
  const stats = Object.values(annotation.data.cachedStats || {})[0] || {};
  if (stats.length !== undefined) return { kind: "length", value: stats.length, unit: stats.unit || "mm" };
  if (stats.angle !== undefined) return { kind: "angle", value: stats.angle };
  return null;
}
