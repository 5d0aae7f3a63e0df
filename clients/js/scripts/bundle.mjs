// The browser build: one minified ES module for JSON, and the MessagePack and Protobuf codecs
// in files of their own that the first imports (relative to its own URL) only when protocol
// "msgpack" or "protobuf" is used. With --copy, all go to fastws/hub/static/, where the hub
// serves them at /static/.
import { copyFileSync, readFileSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { gzipSync } from "node:zlib";
import { build } from "esbuild";

const here = (path) => fileURLToPath(new URL(path, import.meta.url));
const OUT = here("../dist/browser/");
const STATIC = here("../../../fastws/hub/static/");
const FILES = ["fastws-client.js", "fastws-client-msgpack.js", "fastws-client-protobuf.js"];

const codecsBesideBundle = {
  name: "codecs-beside-bundle",
  setup(build) {
    build.onResolve({ filter: /^\.\/msgpack\.js$/ }, () => ({ path: "./fastws-client-msgpack.js", external: true }));
    build.onResolve({ filter: /^\.\/protobuf\.js$/ }, () => ({ path: "./fastws-client-protobuf.js", external: true }));
  },
};

const common = { bundle: true, minify: true, format: "esm", target: "es2020", legalComments: "none", logLevel: "warning" };
await build({ ...common, entryPoints: [here("../src/index.ts")], outfile: OUT + FILES[0], plugins: [codecsBesideBundle] });
// The codec file is @msgpack/msgpack bundled: its license travels with it.
const license = readFileSync(here("../node_modules/@msgpack/msgpack/LICENSE"), "utf8").trim();
const banner = { js: `/*! @msgpack/msgpack, bundled. ${license.replace(/\*\//g, "* /")} */` };
await build({ ...common, entryPoints: [here("../src/msgpack.ts")], outfile: OUT + FILES[1], banner });
await build({ ...common, entryPoints: [here("../src/protobuf.ts")], outfile: OUT + FILES[2] });

for (const name of FILES) {
  const bytes = readFileSync(OUT + name);
  console.log(`${name}: ${bytes.length} bytes minified, ${gzipSync(bytes, { level: 9 }).length} gzipped`);
  if (process.argv.includes("--copy")) copyFileSync(OUT + name, STATIC + name);
}
