// Node built-ins that Emscripten's codec glue and vtk.js reach only when running under Node:
// never in a browser, so an empty module stands in for each.
export default {};
