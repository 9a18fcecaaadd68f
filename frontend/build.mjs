// Copies the browser files CaseBridge serves from node_modules into casebridge/static/vendor.
// The vendor folder is git-ignored: third-party code comes from npm (package-lock.json), never the repo.
import { copyFileSync, mkdirSync, rmSync } from "node:fs";
import { build } from "esbuild";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

const here = dirname(fileURLToPath(import.meta.url));
const target = join(here, "..", "casebridge", "static", "vendor");
const files = {
  "htmx.org/dist/htmx.min.js": "htmx.min.js",
  "uppy/dist/uppy.min.js": "uppy.min.js",
  // uppy.min.js names its source map; the manifest static storage refuses a missing reference.
  "uppy/dist/uppy.min.js.map": "uppy.min.js.map",
  "uppy/dist/uppy.min.css": "uppy.min.css",
  // The API reference page (/api/v1/docs); the stylesheet names its source map.
  "swagger-ui-dist/swagger-ui-bundle.js": "swagger-ui-bundle.js",
  "swagger-ui-dist/swagger-ui.css": "swagger-ui.css",
  "swagger-ui-dist/swagger-ui.css.map": "swagger-ui.css.map",
};
mkdirSync(target, { recursive: true });
// Built afresh: the page scripts' chunks are named by their hash, and old ones would pile up.
for (const dir of ["viewer", "workers"]) rmSync(join(target, dir), { recursive: true, force: true });
for (const [source, name] of Object.entries(files)) {
  copyFileSync(join(here, "node_modules", source), join(target, name));
  console.log(`vendor: ${name}`);
}

// Our viewers, bundled with the npm packages they import (three.js): one file per page script and
// one per worker, minified, with source maps.
const viewer = {
  bundle: true,
  minify: true,
  sourcemap: true,
  target: ["chrome110", "firefox110", "safari16"],
  outdir: join(target, "viewer"),
  logLevel: "warning",
};
await build({
  ...viewer,
  entryPoints: { mesh_viewer: join(here, "src", "mesh_viewer.js"), mesh_worker: join(here, "src", "mesh_worker.js") },
  format: "esm",
});
console.log("vendor: viewer/mesh_viewer.js, viewer/mesh_worker.js");

// The CBCT viewer's series stream worker (src/series_stream_worker.js): a classic worker, which
// every browser we target starts, with nothing of Cornerstone in it.
await build({
  ...viewer,
  entryPoints: { series_stream_worker: join(here, "src", "series_stream_worker.js") },
  format: "iife",
});
console.log("vendor: viewer/series_stream_worker.js");

// The CBCT and X-ray viewers (their shared code in src/cornerstone_setup.js): Cornerstone3D with its image decoder worker next to the page script (it is
// created as new URL("./decodeImageFrameWorker.js", import.meta.url), which esbuild leaves as it
// is), the tools' compute worker one level up (../workers/computeWorker.js), the codecs' WASM in
// viewer/wasm (the page passes that path), and Node's url/events shimmed for vtk.js's xmlbuilder2.
const cornerstone = join(here, "node_modules", "@cornerstonejs");
const common = {
  ...viewer, // each build below names its outdir
  format: "esm",
  alias: {
    url: join(here, "src", "shims", "url.js"),
    events: join(here, "src", "shims", "events.js"),
    ...Object.fromEntries(["fs", "path", "crypto", "module", "worker_threads"].map((n) => [n, join(here, "src", "shims", "empty.js")])),
  },
  loader: { ".wasm": "file" },
};
// The page scripts share their chunks (Cornerstone is in both): the CBCT viewer's own entry is small
// and starts its requests before it imports its engine (src/cbct_engine.js) and the chunks behind it.
await build({
  ...common,
  entryPoints: {
    cbct_viewer: join(here, "src", "cbct_viewer.js"),
    xray_viewer: join(here, "src", "xray_viewer.js"),
  },
  splitting: true,
  outdir: join(target, "viewer"),
});
await build({
  ...common,
  entryPoints: {
    decodeImageFrameWorker: join(cornerstone, "dicom-image-loader", "dist", "esm", "decodeImageFrameWorker.js"),
  },
  outdir: join(target, "viewer"),
});
await build({
  ...common,
  entryPoints: { computeWorker: join(cornerstone, "tools", "dist", "esm", "workers", "computeWorker.js") },
  outdir: join(target, "workers"),
});
mkdirSync(join(target, "viewer", "wasm"), { recursive: true });
for (const [pkg, file] of [
  ["codec-charls", "charlswasm_decode.wasm"],
  ["codec-openjpeg", "openjpegwasm_decode.wasm"],
  ["codec-libjpeg-turbo-8bit", "libjpegturbowasm_decode.wasm"],
  ["codec-openjph", "openjphjs.wasm"],
]) {
  copyFileSync(join(cornerstone, pkg, "dist", file), join(target, "viewer", "wasm", file));
}
console.log("vendor: viewer/cbct_viewer.js, viewer/xray_viewer.js, viewer/decodeImageFrameWorker.js, workers/computeWorker.js, viewer/wasm/");
