// The CBCT viewer's series stream, off the page's thread: one WADO-RS retrieve-series request
// (every instance of the series as a Part 10 file in one multipart/related answer), each file's
// pixel data found and made into the volume's numbers (slice_values.js) here, and handed to the
// page with its buffer transferred, not copied. The page's thread is left to Cornerstone and
// drawing; before, reading the stream and scaling every voxel there held the volume back.
//
// Messages in, each once: { start: url } as the page opens (the stream is read from then on),
// { slices: { sop: info } } when the series metadata is in (sliceInfo of each slice the stream
// can give), { recipe } when the volume says what it wants (the loader options of its slices).
// Files that come before both wait here, and so does the end.
// Messages out: { sop, values } (made) or { sop, pixelData } (not makeable here: the page hands
// the bytes to the loader), then { end: true } or { end: true, error }.
import { instanceUid, multipart, pixelBytes } from "./multipart.js";
import { pixelLength, sliceValues } from "./slice_values.js";

let slices = null;
let recipe = null;
const arrived = []; // [sop, Part 10 file] not yet handed over
let ended = null; // the end message, held while files wait for the recipe

function send(sop, file) {
  const info = slices.get(sop);
  if (!info) return; // not a slice the page expects from the stream
  const bytes = pixelBytes(file, pixelLength(info));
  if (!bytes) return; // the page fetches it on its own at the end
  const values = sliceValues(bytes, info, recipe);
  if (values) {
    postMessage({ sop, values }, [values.pixelData.buffer]);
  } else {
    const own = bytes.slice(); // the file around it stays here
    postMessage({ sop, pixelData: own }, [own.buffer]);
  }
}

function pump() {
  if (!slices || !recipe) return;
  for (const [sop, file] of arrived.splice(0)) send(sop, file);
  if (ended) postMessage(ended);
}

// The page takes the end as "whatever has not come, fetch on its own": not while files wait here.
function finish(message) {
  ended = message;
  pump();
}

async function run(url) {
  try {
    await multipart(url, 'multipart/related; type="application/dicom"', (headers, file) => {
      const sop = instanceUid(file);
      if (!sop) return;
      arrived.push([sop, file]);
      pump();
    });
    finish({ end: true });
  } catch (error) {
    finish({ end: true, error: String(error?.message || error) });
  }
}

let started = false;

onmessage = ({ data }) => {
  if (data.start && !started) {
    started = true;
    run(data.start);
  } else if (data.slices && !slices) {
    slices = new Map(Object.entries(data.slices));
    pump();
  } else if (data.recipe && !recipe) {
    recipe = data.recipe;
    pump();
  }
};
