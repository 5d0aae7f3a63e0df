// Reconnect delays: full jitter in [0, min(max, min * 2^attempt)].
import assert from "node:assert/strict";
import { test } from "node:test";
import WebSocket from "ws";
import { backoffDelay, Client, mayReconnect } from "../dist/index.js";
import { freePort } from "./support/processes.mjs";
import { until } from "./support/clients.mjs";

test("the window doubles per attempt up to the cap; the pick spans all of it", () => {
  for (let attempt = 0; attempt < 12; attempt++) {
    const cap = Math.min(20_000, 500 * 2 ** attempt);
    assert.equal(backoffDelay(attempt, 500, 20_000, () => 0), 0);
    assert.equal(backoffDelay(attempt, 500, 20_000, () => 1), cap);
    const picks = Array.from({ length: 2000 }, () => backoffDelay(attempt, 500, 20_000));
    assert.ok(picks.every((delay) => delay >= 0 && delay <= cap));
    // Spread over the whole window, not bunched at its end (as plain exponential backoff is).
    assert.ok(Math.min(...picks) < cap * 0.05 && Math.max(...picks) > cap * 0.95);
  }
  assert.equal(backoffDelay(1000, 500, 20_000, () => 1), 20_000);
});

test("close codes 4500-4999 forbid reconnecting", () => {
  for (const code of [1001, 1006, 1012, 4001, 4008, 4010, 4029, 4499]) assert.equal(mayReconnect(code), true);
  for (const code of [4500, 4501, 4502, 4503, 4999]) assert.equal(mayReconnect(code), false);
});

test("against a dead port the client keeps trying with growing windows", async () => {
  const port = await freePort();
  const client = new Client(`ws://127.0.0.1:${port}/connection`, {
    websocket: WebSocket,
    minReconnectDelay: 1,
    maxReconnectDelay: 8,
  });
  const attempts = [];
  client.on("connecting", (event) => attempts.push(event));
  client.connect();
  await until(() => attempts.length >= 10, "ten attempts");
  client.disconnect();
  assert.equal(client.state, "disconnected");
  assert.equal(attempts[0].reason, "connect called");
  assert.ok(attempts.slice(1).every((event) => event.code === 1006));
});
