// The numbers of one uncompressed little-endian slice as the DICOM image loader's createImage
// would make them: stored values (sign-extended when fewer bits are stored than allocated),
// pre-scaled by the modality LUT's slope and intercept into the volume's data type. Pure: the
// series stream's worker runs it on every slice as it arrives, the page on the slice it fetches
// on its own (native_slice.js). Returns null for anything it cannot make exactly as the loader
// would, and the caller hands the bytes to the loader instead.

const TYPES = { Uint8Array, Uint16Array, Int16Array, Float32Array };
const RANGES = {
  Uint8Array: [0, 255],
  Uint16Array: [0, 65535],
  Int16Array: [-32768, 32767],
  Float32Array: [-Infinity, Infinity],
};

const first = (meta, tag, fallback) => meta[tag]?.Value?.[0] ?? fallback;

// What the slice's header says about its pixels, from the series metadata (DICOM JSON): the
// same attributes the loader's metadata providers read.
export function sliceInfo(meta) {
  const number = (tag, fallback) => {
    const value = first(meta, tag, fallback);
    return value === undefined ? undefined : Number(value);
  };
  return {
    rows: number("00280010", 0),
    columns: number("00280011", 0),
    samplesPerPixel: number("00280002", 1),
    bitsAllocated: number("00280100", 16),
    bitsStored: number("00280101", undefined),
    pixelRepresentation: number("00280103", 0),
    photometricInterpretation: String(first(meta, "00280004", "")).trim(),
    rescaleSlope: number("00281053", undefined),
    rescaleIntercept: number("00281052", undefined),
    modality: String(first(meta, "00080060", "")).trim(),
    modalityLut: Boolean(meta["00283000"]?.Value?.length),
  };
}

// How many bytes the slice's pixel data holds, by its header.
export function pixelLength(info) {
  return (info.rows * info.columns * info.samplesPerPixel * info.bitsAllocated) / 8;
}

// What the volume asks of every slice (the loader options Cornerstone gives each image load):
// its data type and size, whether values are pre-scaled, whether float rendering is allowed.
export function recipeOf(options = {}) {
  const target = options.targetBuffer || {};
  return {
    type: target.type,
    rows: target.rows,
    columns: target.columns,
    preScale: options.preScale?.enabled !== false,
    allowFloat: options.allowFloatRendering !== false,
  };
}

export function sameRecipe(a, b) {
  return (
    a.type === b.type &&
    a.rows === b.rows &&
    a.columns === b.columns &&
    a.preScale === b.preScale &&
    a.allowFloat === b.allowFloat
  );
}

function storedValues(bytes, info) {
  const { bitsAllocated, bitsStored, pixelRepresentation } = info;
  const signed = pixelRepresentation === 1;
  let values;
  if (bitsAllocated === 8) {
    values = bytes;
  } else {
    const count = bytes.length / 2;
    // A view needs an even offset; otherwise one copy to a buffer of its own.
    const source = bytes.byteOffset % 2 ? bytes.slice() : bytes;
    values = new (signed ? Int16Array : Uint16Array)(source.buffer, source.byteOffset, count);
  }
  if (signed && bitsStored !== undefined && bitsStored < 32) {
    const shift = 32 - bitsStored;
    if (shift > 32 - bitsAllocated) {
      values = values.slice();
      for (let i = 0; i < values.length; i += 1) values[i] = (values[i] << shift) >> shift;
    }
  }
  return values;
}

// { pixelData, min, max, scaled, slope, intercept } or null.
export function sliceValues(bytes, info, recipe) {
  const { rows, columns, samplesPerPixel, bitsAllocated, photometricInterpretation } = info;
  const type = recipe.type;
  if (
    samplesPerPixel !== 1 ||
    !["MONOCHROME1", "MONOCHROME2"].includes(photometricInterpretation) ||
    ![8, 16].includes(bitsAllocated) ||
    (bitsAllocated === 8 && info.pixelRepresentation === 1) || // the loader reads these as unsigned
    !TYPES[type] ||
    bytes.length !== pixelLength(info) ||
    (recipe.rows && recipe.rows !== rows) ||
    (recipe.columns && recipe.columns !== columns) ||
    info.modalityLut ||
    info.modality === "PT" ||
    info.modality === "RTDOSE"
  ) {
    return null;
  }
  const values = storedValues(bytes, info);
  // The loader's createImage pre-scales unless told not to, with slope 1 and intercept 0 when
  // the header has none, and not at all when they are exactly those.
  const slope = info.rescaleSlope ?? 1;
  const intercept = info.rescaleIntercept ?? 0;
  const scaled = recipe.preScale && (slope !== 1 || intercept !== 0);
  const fractional = scaled && (!Number.isInteger(slope) || !Number.isInteger(intercept));
  if (fractional && (type !== "Float32Array" || !recipe.allowFloat)) return null;

  // The one copy, into the volume's type, scaled on the way, in the same pass as the stored
  // values' range (a slice whose scaled range does not fit the type is thrown away after it).
  const pixelData = new TYPES[type](values.length);
  let low = values[0];
  let high = values[0];
  for (let i = 0; i < values.length; i += 1) {
    const v = values[i];
    if (v < low) low = v;
    else if (v > high) high = v;
    pixelData[i] = scaled ? v * slope + intercept : v;
  }
  const ends = scaled ? [low * slope + intercept, high * slope + intercept] : [low, high];
  const min = Math.min(...ends);
  const max = Math.max(...ends);
  const [lowest, highest] = RANGES[type];
  if (min < lowest || max > highest) return null;
  return { pixelData, min, max, scaled, slope, intercept };
}
