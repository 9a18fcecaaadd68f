// A series through CaseBridge's own WADO-RS, with nothing of Cornerstone: the CBCT viewer's small
// entry asks for the metadata before the engine has loaded, and cornerstone_setup.js the same way.

export function seriesUrl(wadoRoot, study, series) {
  return `${location.origin}${wadoRoot}/studies/${study}/series/${series}`;
}

// The series metadata (DICOM JSON, one object per instance, in the server's order).
export async function seriesMetadata(url) {
  const response = await fetch(`${url}/metadata`, {
    credentials: "same-origin",
    headers: { Accept: "application/dicom+json" },
  });
  if (!response.ok) throw new Error(`the server answered ${response.status}`);
  return response.json();
}
