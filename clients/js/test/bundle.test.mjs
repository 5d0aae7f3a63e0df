// The browser build the hub serves is the one the sources make, within its size budget.
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { test } from "node:test";
import { gzipSync } from "node:zlib";

const built = (name) => readFileSync(new URL(`../dist/browser/${name}`, import.meta.url));
const served = (name) => readFileSync(new URL(`../../../fastws/hub/static/${name}`, import.meta.url));
const BUDGET = 8 * 1024;

for (const name of ["fastws-client.js", "fastws-client-msgpack.js", "fastws-client-protobuf.js"]) {
  test(`fastws/hub/static/${name} is the current build (npm run static updates it)`, () => {
    assert.ok(built(name).equals(served(name)), `${name} differs from the build: run npm run static in clients/js`);
  });
}

test(`the JSON browser build is at most ${BUDGET} bytes minified and gzipped`, () => {
  const size = gzipSync(built("fastws-client.js"), { level: 9 }).length;
  assert.ok(size <= BUDGET, `${size} bytes gzipped`);
});

test("the JSON browser build does not contain the MessagePack nor the Protobuf codec", () => {
  const text = built("fastws-client.js").toString();
  assert.match(text, /import\("\.\/fastws-client-msgpack\.js"\)/);
  assert.match(text, /import\("\.\/fastws-client-protobuf\.js"\)/);
  assert.doesNotMatch(text, /PublicationInfo|truncated protobuf/);
  assert.doesNotMatch(text, /ExtensionCodec|DataViewIndexOutOfBounds/);
});
