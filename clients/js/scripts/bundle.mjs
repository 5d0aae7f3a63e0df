// The browser build: one minified ES module for JSON, and the MessagePack codec in a second
// file that the first imports (relative to its own URL) only when protocol "msgpack" is used.
// With --copy, both go to fastws/hub/static/, where the hub serves them at /static/.
import { copyFileSync, readFileSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { gzipSync } from "node:zlib";
import { build } from "esbuild";

const here = (path) => fileURLToPath(new URL(path, import.meta.url));
const OUT = here("../dist/browser/");
const STATIC = here("../../../fastws/hub/static/");
const FILES = ["fastws-client.js", "fastws-client-msgpack.js"];

const msgpackBesideBundle = {
  name: "msgpack-beside-bundle",
  setup(build) {
    build.onResolve({ filter: /^\.\/msgpack\.js$/ }, () => ({ path: "./fastws-client-msgpack.js", external: true }));
  },
};

const common = { bundle: true, minify: true, format: "esm", target: "es2020", legalComments: "none", logLevel: "warning" };
await build({ ...common, entryPoints: [here("../src/index.ts")], outfile: OUT + FILES[0], plugins: [msgpackBesideBundle] });
// The codec file is @msgpack/msgpack bundled: its license travels with it.
const license = readFileSync(here("../node_modules/@msgpack/msgpack/LICENSE"), "utf8").trim();
const banner = { js: `/*! @msgpack/msgpack, bundled. ${license.replace(/\*\//g, "* /")} */` };
await build({ ...common, entryPoints: [here("../src/msgpack.ts")], outfile: OUT + FILES[1], banner });

for (const name of FILES) {
  const bytes = readFileSync(OUT + name);
  console.log(`${name}: ${bytes.length} bytes minified, ${gzipSync(bytes, { level: 9 }).length} gzipped`);
  if (process.argv.includes("--copy")) copyFileSync(OUT + name, STATIC + name);
}
