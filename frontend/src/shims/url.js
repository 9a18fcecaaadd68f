// vtk.js reaches xmlbuilder2, which `require`s Node's url module at load; the viewer never
// serialises XML, so the browser's URL is all it needs.
export const URL = globalThis.URL;
export const URLSearchParams = globalThis.URLSearchParams;
export default { URL, URLSearchParams };
