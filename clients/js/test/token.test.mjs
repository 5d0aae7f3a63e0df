// Tokens that expire: the client gets a new one before `exp` and keeps every publication.
import assert from "node:assert/strict";
import { after, afterEach, before, test } from "node:test";
import { disconnectAll, newClient, next, until } from "./support/clients.mjs";
import { Hub, makeToken } from "./support/processes.mjs";
import { refreshDelay, tokenExpiry } from "../dist/token.js";

afterEach(disconnectAll);

let hub;
before(async () => {
  hub = await (await Hub.create()).start();
});
after(() => hub.stop("SIGTERM"));

test("tokenExpiry reads exp; refreshDelay keeps a quarter of the life, a minute at most", () => {
  assert.equal(tokenExpiry(makeToken("a", { exp: 1234 })), 1234);
  assert.equal(tokenExpiry(makeToken("a")), undefined);
  assert.equal(tokenExpiry("not a token"), undefined);
  assert.equal(refreshDelay(104, 100_000), 3000);
  assert.equal(refreshDelay(1000, 0), 940_000);
  assert.equal(refreshDelay(1, 5000), 0);
});

// The hub closes a connection at exp + jwt_leeway (5 s); the client replaces a 4 s token
// after 3 s, which leaves a loaded machine time to reconnect.
test("a short-lived token is replaced before it expires, without losing a publication", async () => {
  const issued = [];
  const getToken = () => {
    issued.push(Date.now());
    return makeToken("short", { exp: Math.floor(Date.now() / 1000) + 4 });
  };
  const reader = newClient(hub, "short", { getToken });
  const publisher = newClient(hub, "publisher");
  const stops = [];
  const reconnects = [];
  reader.on("disconnected", (event) => stops.push(event));
  reader.on("connecting", (event) => reconnects.push(event.reason));
  reader.connect();
  publisher.connect();
  await Promise.all([reader.ready(5000), publisher.ready(5000)]);
  const sub = reader.newSubscription("chat:tokens");
  const received = [];
  sub.on("publication", (pub) => received.push(pub.data));
  sub.subscribe();
  await sub.ready(5000);

  let n = 0;
  while (issued.length < 4) {
    await publisher.publish("chat:tokens", ++n);
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
  await until(() => received.length === n, `all ${n} publications`);
  assert.deepEqual(received, Array.from({ length: n }, (_, i) => i + 1));
  assert.deepEqual(stops, []);
  // Each new token went to the hub in a refresh command: no reconnect.
  assert.deepEqual(reconnects.slice(1), []);
  assert.equal(reader.state, "connected");
  reader.disconnect();
  publisher.disconnect();
});

test("an expired token without getToken stops the client with 4501", async () => {
  const client = newClient(hub, "late", { getToken: undefined, token: makeToken("late", { exp: Math.floor(Date.now() / 1000) + 1 }) });
  const disconnected = next(client, "disconnected");
  client.connect();
  const event = await disconnected;
  assert.equal(event.code, 4501);
  assert.equal(event.reconnect, false);
});
