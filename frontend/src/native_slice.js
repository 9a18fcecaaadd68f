// A Cornerstone image made on the page from one slice's uncompressed little-endian pixel bytes:
// what the DICOM image loader's createImage makes of them (the same pre-scaling by the modality
// LUT's slope and intercept into the volume's data type, the same image fields), without a round
// trip through a decoder worker, a canvas per slice, or copies beyond the one into the volume's
// type. The numbers come from slice_values.js, made here (the slice the viewer fetches on its
// own) or in the series stream's worker (every other slice); it takes only what it can make
// exactly as the loader would, and for anything else the caller hands the bytes to the loader.
import { metaData, utilities } from "@cornerstonejs/core";
import { recipeOf, sliceValues } from "./slice_values.js";

export function nativeSliceImage(imageId, bytes, info, options = {}) {
  const values = sliceValues(bytes, info, recipeOf(options));
  return values ? imageFromValues(imageId, values, options) : null;
}

// The image of a slice whose values slice_values.js made for the loader options `options`.
export function imageFromValues(imageId, values, options = {}) {
  const { pixelData, min, max, scaled, slope, intercept } = values;
  const pixel = metaData.get("imagePixelModule", imageId) || {};
  const { rows, columns, photometricInterpretation } = pixel;
  const type = options.targetBuffer.type;
  const modalityLut = metaData.get("modalityLutModule", imageId) || {};
  const modality = metaData.get("generalSeriesModule", imageId)?.modality;
  const scalingParameters = { rescaleSlope: slope, rescaleIntercept: intercept, modality };
  const preScale = scaled
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
