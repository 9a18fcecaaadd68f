// Copies the browser files CaseBridge serves from node_modules into casebridge/static/vendor.
// The vendor folder is git-ignored: third-party code comes from npm (package-lock.json), never the repo.
import { copyFileSync, mkdirSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

const here = dirname(fileURLToPath(import.meta.url));
const target = join(here, "..", "casebridge", "static", "vendor");
const files = {
  "htmx.org/dist/htmx.min.js": "htmx.min.js",
};
mkdirSync(target, { recursive: true });
for (const [source, name] of Object.entries(files)) {
  copyFileSync(join(here, "node_modules", source), join(target, name));
  console.log(`vendor: ${name}`);
}
