// The CBCT / CT viewer's page script. This part is small and runs first: it asks for the series
// metadata and opens the series stream (series_stream.js) as the page opens, and asks for the
// middle slice as soon as the metadata is in, while the engine (cbct_engine.js: Cornerstone3D,
// most of the viewer's 4.5 MB) loads and starts. Before, all of it waited for the whole bundle.
import { SeriesStream, middleFirst } from "./series_stream.js";
import { seriesMetadata, seriesUrl } from "./wado.js";

const root = document.getElementById("cbct-viewer");
const config = JSON.parse(document.getElementById("cbct-config").textContent);
const statusLine = root.querySelector("[data-status]");
const url = seriesUrl(config.wadoRoot, config.study, config.series);
const stream = new SeriesStream(root);
stream.open(url);

const frames = seriesMetadata(url).then((instances) => {
  root.dataset.metadataMs = String(Math.round(performance.now()));
  const all = stream.describe(instances, url);
  const middle = all[middleFirst(all.length)[0]];
  if (middle) stream.frame(middle.sop, middle.path);
  return all;
});
frames.catch(() => {}); // awaited by the engine, which reports a failure

import("./cbct_engine.js")
  .then(({ show }) => show(root, config, stream, frames))
  .catch((error) => {
    stream.close();
    statusLine.textContent = `The study could not be shown: ${error.message}`;
    root.dataset.state = "failed";
  });
