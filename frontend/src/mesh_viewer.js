// The 3D scan viewer of a case: every STL, PLY and OBJ of the case in one scene, each toggled on
// its own (upper, lower, bite), with orbit/zoom/pan, lighting presets, standard views, a
// point-to-point distance in millimetres and a section plane. Files stream from the vault through
// the same download endpoint (and audit) as any download; parsing happens in a worker.
import * as THREE from "three";
import { OrbitControls } from "three/examples/jsm/controls/OrbitControls.js";

const root = document.getElementById("mesh-viewer");
const files = JSON.parse(document.getElementById("mesh-files").textContent);
const canvasHost = root.querySelector("[data-canvas]");
const statusLine = root.querySelector("[data-status]");
const sizeLine = root.querySelector("[data-size]");
const distanceLine = root.querySelector("[data-distance]");
const layers = root.querySelector("[data-layers]");

const renderer = new THREE.WebGLRenderer({ antialias: true, preserveDrawingBuffer: true });
renderer.setPixelRatio(Math.min(window.devicePixelRatio, 2));
renderer.localClippingEnabled = true;
canvasHost.appendChild(renderer.domElement);
renderer.domElement.setAttribute("aria-label", "3D view of the case's scans");
renderer.domElement.tabIndex = 0;

const scene = new THREE.Scene();
scene.background = new THREE.Color(0xf4f6f8);
// Intraoral scanners write millimetres with the occlusal axis as Z: Z is up here.
const camera = new THREE.PerspectiveCamera(40, 1, 0.1, 5000);
camera.up.set(0, 0, 1);
const controls = new OrbitControls(camera, renderer.domElement);
controls.enableDamping = true;
controls.listenToKeyEvents(renderer.domElement);
const group = new THREE.Group();
scene.add(group);
const section = new THREE.Plane(new THREE.Vector3(0, 0, -1), 0);

const lights = new THREE.Group();
scene.add(lights);
const PRESETS = {
  studio: [["ambient", 0.35], ["key", 1.1, [1, -1, 2]], ["fill", 0.45, [-2, 1, 1]]],
  bright: [["ambient", 0.7], ["key", 1.0, [0, -1, 2]], ["fill", 0.7, [0, 2, 1]]],
  flat: [["ambient", 1.0]],
};
function light(preset) {
  lights.clear();
  for (const [kind, intensity, position] of PRESETS[preset]) {
    if (kind === "ambient") lights.add(new THREE.AmbientLight(0xffffff, intensity));
    else {
      const directional = new THREE.DirectionalLight(0xffffff, intensity);
      directional.position.set(...position).multiplyScalar(100);
      lights.add(directional);
    }
  }
  root.dataset.lighting = preset;
}
light("studio");

function resize() {
  const { width } = canvasHost.getBoundingClientRect();
  const height = Math.max(320, Math.min(window.innerHeight - 220, width * 0.7));
  renderer.setSize(width, height);
  camera.aspect = width / height;
  camera.updateProjectionMatrix();
}
window.addEventListener("resize", resize);
resize();

function animate() {
  controls.update();
  renderer.render(scene, camera);
  requestAnimationFrame(animate);
}
animate();

// --- loading -------------------------------------------------------------------------------
const worker = new Worker(root.dataset.worker, { type: "module" });
const pending = new Map();
worker.onmessage = ({ data }) => {
  const done = pending.get(data.id);
  pending.delete(data.id);
  if (data.error) done.reject(new Error(data.error));
  else done.resolve(data);
};

async function download(file, onProgress) {
  const response = await fetch(file.url, { credentials: "include" });
  if (!response.ok) throw new Error(`the server answered ${response.status}`);
  const total = Number(response.headers.get("Content-Length")) || file.size || 0;
  const reader = response.body.getReader();
  const chunks = [];
  let received = 0;
  for (;;) {
    const { done, value } = await reader.read();
    if (done) break;
    chunks.push(value);
    received += value.length;
    onProgress(total ? received / total : 0);
  }
  const buffer = new Uint8Array(received);
  let offset = 0;
  for (const chunk of chunks) {
    buffer.set(chunk, offset);
    offset += chunk.length;
  }
  return buffer.buffer;
}

function parse(file, buffer) {
  return new Promise((resolve, reject) => {
    pending.set(file.id, { resolve, reject });
    worker.postMessage({ id: file.id, type: file.type, buffer }, [buffer]);
  });
}

const COLOURS = [0xe8dccb, 0xd6c6b0, 0xa9c1d9, 0xc9d9a9];
function addMesh(file, parsed, index) {
  const geometry = new THREE.BufferGeometry();
  for (const [name, { array, itemSize, normalized }] of Object.entries(parsed.attributes)) {
    geometry.setAttribute(name, new THREE.BufferAttribute(array, itemSize, normalized));
  }
  if (parsed.index) geometry.setIndex(new THREE.BufferAttribute(parsed.index, 1));
  const coloured = Boolean(parsed.attributes.color);
  const material = new THREE.MeshStandardMaterial({
    color: coloured ? 0xffffff : COLOURS[index % COLOURS.length],
    vertexColors: coloured,
    roughness: 0.55,
    metalness: 0.0,
    side: THREE.DoubleSide,
    clippingPlanes: [section],
  });
  const mesh = new THREE.Mesh(geometry, material);
  mesh.name = file.name;
  group.add(mesh);
  return mesh;
}

function layerToggle(file, mesh) {
  const label = document.createElement("label");
  const box = document.createElement("input");
  box.type = "checkbox";
  box.checked = true;
  box.addEventListener("change", () => {
    mesh.visible = box.checked;
  });
  label.append(box, ` ${file.label || file.name}`);
  layers.append(label);
}

const bounds = new THREE.Box3();
function frame(direction = new THREE.Vector3(0, -1, 0.6)) {
  bounds.setFromObject(group);
  const centre = bounds.getCenter(new THREE.Vector3());
  const radius = bounds.getSize(new THREE.Vector3()).length() / 2 || 10;
  const distance = radius / Math.sin(THREE.MathUtils.degToRad(camera.fov / 2));
  camera.position.copy(centre).add(direction.clone().normalize().multiplyScalar(distance));
  camera.near = distance / 100;
  camera.far = distance * 100;
  camera.updateProjectionMatrix();
  controls.target.copy(centre);
  controls.update();
}

async function load() {
  let loaded = 0;
  const failures = [];
  for (const [index, file] of files.entries()) {
    try {
      const buffer = await download(file, (fraction) => {
        statusLine.textContent = `Loading ${file.name}: ${Math.round(fraction * 100)}%`;
      });
      statusLine.textContent = `Preparing ${file.name}`;
      const mesh = addMesh(file, await parse(file, buffer), index);
      layerToggle(file, mesh);
      loaded += 1;
    } catch (error) {
      failures.push(`${file.name}: ${error.message}`);
    }
  }
  if (loaded) {
    frame();
    const size = bounds.getSize(new THREE.Vector3());
    sizeLine.textContent = `${size.x.toFixed(1)} × ${size.y.toFixed(1)} × ${size.z.toFixed(1)} mm`;
    sectionRange.min = String(Math.floor(bounds.min.z));
    sectionRange.max = String(Math.ceil(bounds.max.z));
    sectionRange.value = sectionRange.max;
    moveSection();
  }
  statusLine.textContent = failures.length
    ? `Could not show ${failures.join("; ")}`
    : `${loaded} scan${loaded === 1 ? "" : "s"} loaded.`;
  root.dataset.state = failures.length && !loaded ? "failed" : "ready";
}

// --- tools -----------------------------------------------------------------------------------
const VIEWS = {
  occlusal: [0, 0, 1],
  front: [0, -1, 0.15],
  left: [-1, 0, 0.15],
  right: [1, 0, 0.15],
  reset: [0, -1, 0.6],
};
for (const button of root.querySelectorAll("[data-view]")) {
  button.addEventListener("click", () => frame(new THREE.Vector3(...VIEWS[button.dataset.view])));
}
root.querySelector("[data-lighting-choice]").addEventListener("change", (event) => light(event.target.value));

const sectionRange = root.querySelector("[data-section]");
function moveSection() {
  section.constant = Number(sectionRange.value);
}
sectionRange.addEventListener("input", moveSection);

const raycaster = new THREE.Raycaster();
const measureButton = root.querySelector("[data-measure]");
const marks = new THREE.Group();
scene.add(marks);
let measuring = false;
let points = [];
function stopMeasuring() {
  measuring = false;
  points = [];
  measureButton.setAttribute("aria-pressed", "false");
  renderer.domElement.style.cursor = "";
}
measureButton.addEventListener("click", () => {
  marks.clear();
  distanceLine.textContent = "Click two points on a scan.";
  measuring = true;
  points = [];
  measureButton.setAttribute("aria-pressed", "true");
  renderer.domElement.style.cursor = "crosshair";
});
renderer.domElement.addEventListener("keydown", (event) => {
  if (event.key === "Escape" && measuring) {
    stopMeasuring();
    distanceLine.textContent = "";
  }
});
function mark(point) {
  const radius = bounds.getSize(new THREE.Vector3()).length() / 400 || 0.1;
  const dot = new THREE.Mesh(new THREE.SphereGeometry(radius), new THREE.MeshBasicMaterial({ color: 0xd1242f }));
  dot.position.copy(point);
  marks.add(dot);
}
renderer.domElement.addEventListener("click", (event) => {
  if (!measuring) return;
  const rect = renderer.domElement.getBoundingClientRect();
  const pointer = new THREE.Vector2(
    ((event.clientX - rect.left) / rect.width) * 2 - 1,
    -((event.clientY - rect.top) / rect.height) * 2 + 1,
  );
  raycaster.setFromCamera(pointer, camera);
  const hit = raycaster.intersectObjects(group.children.filter((m) => m.visible), false)[0];
  if (!hit) return;
  points.push(hit.point.clone());
  mark(hit.point);
  if (points.length === 2) {
    const line = new THREE.Line(
      new THREE.BufferGeometry().setFromPoints(points),
      new THREE.LineBasicMaterial({ color: 0xd1242f, depthTest: false }),
    );
    marks.add(line);
    const distance = points[0].distanceTo(points[1]);
    distanceLine.textContent = `Distance: ${distance.toFixed(2)} mm`;
    root.dataset.measuredMm = distance.toFixed(3);
    stopMeasuring();
  }
});

root.querySelector("[data-fullscreen]").addEventListener("click", () => {
  if (document.fullscreenElement) document.exitFullscreen();
  else root.requestFullscreen();
});

load();
