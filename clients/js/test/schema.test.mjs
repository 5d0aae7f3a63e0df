// The Protobuf codec's schema is written by hand; it must say what fastws/hub/protocol/hub.proto
// says, field by field, or a client and the hub read each other's messages wrong without an error.
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { test } from "node:test";
import { REQUESTS, SCHEMAS } from "../dist/protobuf.js";
import { ROOT } from "./support/processes.mjs";

const PYTHON = process.env.PYTHON ?? "python3";

// Every message of hub.proto as {field: {number, kind, message}}, in the codec's own kinds.
const DUMP = `
import json
from google.protobuf.descriptor import FieldDescriptor as F
from fastws.hub.protocol import hub_pb2

def kind(field):
    if field.message_type is not None and field.message_type.GetOptions().map_entry:
        return "map", field.message_type.fields_by_name["value"].message_type.name
    if field.type == F.TYPE_MESSAGE:
        repeated = field.is_repeated
        return ("repeated" if repeated else "message"), field.message_type.name
    names = {F.TYPE_UINT32: "uint", F.TYPE_UINT64: "uint", F.TYPE_BOOL: "bool",
             F.TYPE_STRING: "string", F.TYPE_BYTES: "bytes"}
    return names[field.type], None

print(json.dumps({
    name: {f.name: dict(zip(("number", "kind", "message"), (f.number, *kind(f)))) for f in m.fields}
    for name, m in hub_pb2.DESCRIPTOR.message_types_by_name.items()
}))
`;
const PROTO = JSON.parse(execFileSync(PYTHON, ["-c", DUMP], { cwd: ROOT, encoding: "utf8" }));

/** The codec's empty message stands for every empty result of hub.proto. */
const sameType = (ours, theirs) => ours === theirs || (ours === "Empty" && Object.keys(PROTO[theirs]).length === 0);

/** A codec field as hub.proto would declare it: `data` carries a `json` flag in the next field. */
function expected(name, [number, kind, message]) {
  const fields = { [name]: { number, kind: kind === "data" || kind === "json" ? "bytes" : kind, message } };
  if (kind === "data") fields.json = { number: number + 1, kind: "bool" };
  return fields;
}

for (const [type, schema] of Object.entries(SCHEMAS)) {
  if (type === "Empty") continue;
  test(`${type} matches hub.proto`, () => {
    assert.ok(PROTO[type], `hub.proto has no message ${type}`);
    const ours = Object.assign({}, ...Object.entries(schema).map(([name, spec]) => expected(name, spec)));
    assert.deepEqual(Object.keys(ours).sort(), Object.keys(PROTO[type]).sort(), `${type}'s fields`);
    for (const [name, field] of Object.entries(ours)) {
      const theirs = PROTO[type][name];
      assert.equal(field.number, theirs.number, `${type}.${name}'s number`);
      assert.equal(field.kind, theirs.kind, `${type}.${name}'s kind`);
      if (field.message) assert.ok(sameType(field.message, theirs.message), `${type}.${name} is a ${theirs.message}`);
    }
  });
}

test("every command of hub.proto has its request in the codec, at the same field", () => {
  const { id, ...requests } = PROTO.Command;
  assert.equal(id.number, 1);
  assert.deepEqual(Object.keys(REQUESTS).sort(), Object.keys(requests).sort());
  for (const [method, [number, message]] of Object.entries(REQUESTS)) {
    assert.equal(number, requests[method].number, `Command.${method}'s number`);
    assert.equal(message, requests[method].message, `Command.${method}'s message`);
    assert.ok(message === "PingRequest" || SCHEMAS[message], `the codec writes ${message}`);
  }
});

test("every message the codec reads or writes is in hub.proto", () => {
  const used = new Set(Object.values(SCHEMAS).flatMap((schema) => Object.values(schema).map(([, , message]) => message)));
  for (const message of used) if (message && message !== "Empty") assert.ok(SCHEMAS[message] && PROTO[message], message);
});
