// Parses one scan (STL, PLY or OBJ) off the page's thread, so a 100 MB scan never freezes it, and
// hands back plain typed arrays (transferred, not copied).
import { STLLoader } from "three/examples/jsm/loaders/STLLoader.js";
import { PLYLoader } from "three/examples/jsm/loaders/PLYLoader.js";
import { OBJLoader } from "three/examples/jsm/loaders/OBJLoader.js";
import { mergeGeometries } from "three/examples/jsm/utils/BufferGeometryUtils.js";

function parse(type, buffer) {
  if (type === "stl") return new STLLoader().parse(buffer);
  if (type === "ply") return new PLYLoader().parse(buffer);
  if (type === "obj") {
    const group = new OBJLoader().parse(new TextDecoder().decode(buffer));
    const parts = [];
    group.traverse((node) => {
      if (node.isMesh) parts.push(node.geometry.index ? node.geometry.toNonIndexed() : node.geometry);
    });
    if (!parts.length) throw new Error("the OBJ file holds no surface");
    for (const part of parts) {
      for (const name of Object.keys(part.attributes)) {
        if (!["position", "normal", "color"].includes(name)) part.deleteAttribute(name);
      }
    }
    return mergeGeometries(parts, false) || parts[0];
  }
  throw new Error(`cannot show a ${type} file`);
}

self.onmessage = ({ data }) => {
  const { id, type, buffer } = data;
  try {
    const geometry = parse(type, buffer);
    if (!geometry.attributes.normal) geometry.computeVertexNormals();
    const attributes = {};
    const transfer = [];
    for (const name of ["position", "normal", "color"]) {
      const attribute = geometry.attributes[name];
      if (!attribute) continue;
      const array = attribute.array instanceof Float32Array ? attribute.array : new Float32Array(attribute.array);
      attributes[name] = { array, itemSize: attribute.itemSize, normalized: attribute.normalized };
      transfer.push(array.buffer);
    }
    const index = geometry.index ? geometry.index.array : null;
    if (index) transfer.push(index.buffer);
    self.postMessage({ id, attributes, index }, transfer);
  } catch (error) {
    self.postMessage({ id, error: String((error && error.message) || error) });
  }
};
