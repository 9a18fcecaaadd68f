// The CBCT viewer's series stream, page side (nothing of Cornerstone here: this module runs before
// the engine has loaded). The series' pixels arrive in one request (WADO-RS retrieve series: every
// instance as a Part 10 file in one multipart/related stream, one authorization and no audit event
// beyond the opening's) rather than a request per slice, read in a worker (series_stream_worker.js)
// that makes each slice's numbers for the volume and hands them over. Each slice's loader waits for
// its instance from there; one the stream cannot give (compressed, multi-frame, or the stream
// failed) is fetched on its own by WADO-RS frames.
import { multipart } from "./multipart.js";
import { pixelLength, recipeOf, sliceInfo } from "./slice_values.js";

export const NATIVE_LITTLE_ENDIAN = new Set(["1.2.840.10008.1.2", "1.2.840.10008.1.2.1"]);

// The order slices are asked for: the middle one first (it has its own request, and the axial
// view opens on it, so the first slice to arrive is the one on screen), then every other in the
// order the series stream brings them.
export function middleFirst(count) {
  const middle = Math.floor((count - 1) / 2);
  return [middle, ...Array.from({ length: count }, (_, i) => i).filter((i) => i !== middle)];
}

export class SeriesStream {
  constructor(root) {
    this.root = root;
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

  // The stream is asked for as the page opens, before the metadata and while the engine loads:
  // its worker keeps what arrives until it is told which slices to expect (describe) and what
  // the volume wants of them (ask). It ends its stream only after both.
  open(url) {
    this.worker = new Worker(this.root.dataset.streamWorker);
    this.worker.onmessage = ({ data }) => {
      if (data.end) {
        this.root.dataset.streamEndMs = String(Math.round(performance.now()));
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
    this.root.dataset.streamStartMs = String(Math.round(performance.now()));
    this.worker.postMessage({ start: url });
  }

  // The series metadata is in: every frame of the series as { sop, path, meta }, in the server's
  // order; the stream learns which instances it can give and how long their pixel data is. A
  // series with nothing the stream can give (compressed, say) closes it: every slice comes by its
  // own request.
  describe(instances, url) {
    const frames = [];
    for (const meta of instances) {
      const sop = meta["00080018"].Value[0];
      const count = Number(meta["00280008"]?.Value?.[0] || 1);
      const syntax = meta["00083002"]?.Value?.[0];
      if (count === 1 && NATIVE_LITTLE_ENDIAN.has(syntax)) {
        this.expected.set(sop, { ...sliceInfo(meta), transferSyntax: syntax });
      }
      for (let frame = 1; frame <= count; frame += 1) {
        frames.push({ sop, path: `${url}/instances/${sop}/frames/${frame}`, meta });
      }
    }
    if (!this.expected.size) this.close();
    else if (this.ended) this.end(); // it failed before it knew them: they come slice by slice
    else this.worker?.postMessage({ slices: Object.fromEntries(this.expected) });
    return frames;
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
    if (!wanted || this.ended) return; // the stream failed early: the loader fetches every slice
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
