// A Cornerstone image made on the page from one slice's uncompressed little-endian pixel bytes:
// what the DICOM image loader's createImage makes of them (the same pre-scaling by the modality
// LUT's slope and intercept into the volume's data type, the same image fields), without a round
// trip through a decoder worker, a canvas per slice, or copies beyond the one into the volume's
// type. It takes only what it can make exactly as the loader would: one sample per pixel
// (MONOCHROME1/2), 8 or 16 bits allocated, no modality LUT sequence, not PT or RTDOSE (their
// scaling has more than slope and intercept), the slice the size of the volume's slices, and
// scaled values that fit the volume's type. For anything else it returns null and the caller
// hands the bytes to the loader as before.
import { metaData, utilities } from "@cornerstonejs/core";

const TYPES = { Uint8Array, Uint16Array, Int16Array, Float32Array };
const RANGES = {
  Uint8Array: [0, 255],
  Uint16Array: [0, 65535],
  Int16Array: [-32768, 32767],
  Float32Array: [-Infinity, Infinity],
};

// The stored values of the slice as a typed array of its own (sign-extended when fewer bits are
// stored than allocated, as the loader's worker does).
function storedValues(bytes, pixel) {
  const { bitsAllocated, bitsStored, pixelRepresentation } = pixel;
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

function minMax(values) {
  let min = values[0];
  let max = values[0];
  for (let i = 1; i < values.length; i += 1) {
    const v = values[i];
    if (v < min) min = v;
    else if (v > max) max = v;
  }
  return { min, max };
}

export function nativeSliceImage(imageId, bytes, options = {}) {
  const pixel = metaData.get("imagePixelModule", imageId);
  if (!pixel || !options.targetBuffer?.type) return null;
  const { rows, columns, samplesPerPixel = 1, bitsAllocated, photometricInterpretation } = pixel;
  const type = options.targetBuffer.type;
  if (
    samplesPerPixel !== 1 ||
    !["MONOCHROME1", "MONOCHROME2"].includes(photometricInterpretation) ||
    ![8, 16].includes(bitsAllocated) ||
    (bitsAllocated === 8 && pixel.pixelRepresentation === 1) || // the loader reads these as unsigned
    !TYPES[type] ||
    bytes.length !== (rows * columns * bitsAllocated) / 8 ||
    (options.targetBuffer.rows && options.targetBuffer.rows !== rows) ||
    (options.targetBuffer.columns && options.targetBuffer.columns !== columns)
  ) {
    return null;
  }
  const modalityLut = metaData.get("modalityLutModule", imageId) || {};
  const modality = metaData.get("generalSeriesModule", imageId)?.modality;
  if (modalityLut.modalityLUTSequence?.length || modality === "PT" || modality === "RTDOSE") return null;

  const values = storedValues(bytes, pixel);
  const before = minMax(values);
  // The loader's createImage pre-scales unless told not to, with slope 1 and intercept 0 when
  // the header has none, and not at all when they are exactly those.
  const slope = modalityLut.rescaleSlope ?? 1;
  const intercept = modalityLut.rescaleIntercept ?? 0;
  const scale = options.preScale?.enabled !== false && (slope !== 1 || intercept !== 0);
  const fractional = scale && (!Number.isInteger(slope) || !Number.isInteger(intercept));
  if (fractional && (type !== "Float32Array" || options.allowFloatRendering === false)) return null;
  const ends = scale ? [before.min * slope + intercept, before.max * slope + intercept] : [before.min, before.max];
  const min = Math.min(...ends);
  const max = Math.max(...ends);
  const [lowest, highest] = RANGES[type];
  if (min < lowest || max > highest) return null;

  // The one copy: into the volume's type, scaled on the way.
  const pixelData = new TYPES[type](values.length);
  if (scale) {
    for (let i = 0; i < values.length; i += 1) pixelData[i] = values[i] * slope + intercept;
  } else {
    pixelData.set(values);
  }
  const scalingParameters = { rescaleSlope: slope, rescaleIntercept: intercept, modality };
  const preScale = scale
    ? { ...options.preScale, enabled: true, scalingParameters, scaled: true }
    : { enabled: options.preScale?.enabled !== false, scaled: false };
  const plane = metaData.get("imagePlaneModule", imageId) || {};
  const voi = metaData.get("voiLutModule", imageId) || {};
  const calibration = metaData.get("calibrationModule", imageId) || {};
  const imageFrame = {
    ...pixel,
    pixelData,
    pixelDataLength: pixelData.length,
    smallestPixelValue: min,
    largestPixelValue: max,
    preScale,
  };
  const image = {
    imageId,
    dataType: type,
    color: false,
    calibration,
    columnPixelSpacing: plane.columnPixelSpacing,
    columns,
    height: rows,
    preScale,
    intercept: modalityLut.rescaleIntercept ? modalityLut.rescaleIntercept : 0,
    slope: modalityLut.rescaleSlope ? modalityLut.rescaleSlope : 1,
    invert: photometricInterpretation === "MONOCHROME1",
    minPixelValue: min,
    maxPixelValue: max,
    rowPixelSpacing: plane.rowPixelSpacing,
    rows,
    sizeInBytes: pixelData.byteLength,
    width: columns,
    windowCenter: voi.windowCenter ? voi.windowCenter[0] : undefined,
    windowWidth: voi.windowWidth ? voi.windowWidth[0] : undefined,
    voiLUTFunction: (voi.voiLUTFunction?.length && voi.voiLUTFunction[0]) || voi.voiLutFunction || undefined,
    decodeTimeInMS: 0,
    floatPixelData: undefined,
    imageFrame,
    voxelManager: utilities.VoxelManager.createImageVoxelManager({
      scalarData: pixelData,
      width: columns,
      height: rows,
      numberOfComponents: 1,
    }),
    rgba: false,
    getPixelData: () => imageFrame.pixelData,
    getCanvas: undefined,
    numberOfComponents: 1,
  };
  if (voi.voiLUTSequence?.length) image.voiLUT = voi.voiLUTSequence[0];
  if (image.windowCenter === undefined || image.windowWidth === undefined) {
    const level = utilities.windowLevel.toWindowLevel(min, max);
    image.windowWidth = level.windowWidth;
    image.windowCenter = level.windowCenter;
  }
  return image;
}
