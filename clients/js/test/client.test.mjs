// The client against a real `python -m fastws`, over both encodings.
import assert from "node:assert/strict";
import { after, afterEach, before, describe, test } from "node:test";
import WebSocket from "ws";
import { Client, Disconnected, HubError } from "../dist/index.js";
import { disconnectAll, newClient, next, PROTOCOLS, until } from "./support/clients.mjs";
import { Hub, makeToken } from "./support/processes.mjs";

afterEach(disconnectAll);

let hub;
before(async () => {
  hub = await (await Hub.create()).start();
});
after(() => hub.stop("SIGTERM"));

for (const protocol of PROTOCOLS) {
  describe(`protocol ${protocol}`, () => {
    const clients = [];
    const connected = async (user, options = {}) => {
      const client = newClient(hub, user, { protocol, ...options });
      clients.push(client);
      client.connect();
      await client.ready(10_000);
      return client;
    };
    after(() => clients.forEach((client) => client.disconnect()));

    test("connect, subscribe, publish, presence, history", async () => {
      const ann = await connected("ann");
      assert.equal(ann.state, "connected");
      assert.equal(ann.user, "ann");
      const channel = `chat:${protocol}-basics`;
      const sub = ann.newSubscription(channel);
      const subscribed = next(sub, "subscribed");
      sub.subscribe();
      const first = await subscribed;
      assert.equal(first.recovered, false);
      assert.equal(first.wasRecovering, false);
      assert.equal(sub.state, "subscribed");

      const received = [];
      sub.on("publication", (pub) => received.push(pub));
      const offsets = [];
      for (const n of [1, 2, 3]) offsets.push(await sub.publish({ n, bytes: [1, 2] }));
      await until(() => received.length === 3, "three publications");
      assert.deepEqual(received.map((p) => p.data.n), [1, 2, 3]);
      assert.deepEqual(received.map((p) => p.offset), offsets);
      assert.ok(received.every((p) => p.user === "ann" && p.recovered === false));

      const bob = await connected("bob");
      const bobSub = bob.newSubscription(channel);
      const joined = next(sub, "join", (event) => event.user === "bob");
      bobSub.subscribe();
      await bobSub.ready(5000);
      const join = await joined;
      assert.equal(join.client, bob.clientId);
      const presence = await sub.presence();
      assert.deepEqual(Object.values(presence).map((c) => c.user).sort(), ["ann", "bob"]);
      assert.deepEqual(await sub.presenceStats(), { numClients: 2, numUsers: 2 });

      const history = await sub.history({ limit: 2 });
      assert.deepEqual(history.publications.map((p) => p.data.n), [1, 2]);
      assert.equal(history.offset, offsets[2]);
      const newest = await sub.history({ limit: 2, reverse: true });
      assert.deepEqual(newest.publications.map((p) => p.data.n), [3, 2]);
      const after = await sub.history({ since: { epoch: history.epoch, offset: offsets[0] } });
      assert.deepEqual(after.publications.map((p) => p.data.n), [2, 3]);
      const before = await sub.history({ since: { epoch: history.epoch, offset: offsets[2] }, reverse: true });
      assert.deepEqual(before.publications.map((p) => p.data.n), [2, 1]);

      const left = next(sub, "leave", (event) => event.user === "bob");
      bobSub.unsubscribe();
      assert.equal(bobSub.state, "unsubscribed");
      await left;
    });

    test("private messages", async () => {
      const ann = await connected("ann");
      const bob = await connected("bob");
      const message = next(bob, "message");
      await ann.send("bob", { text: "psst" });
      assert.deepEqual(await message, { from: "ann", data: { text: "psst" } });
    });

    test("binary data is a Uint8Array, published and received", async () => {
      const ann = await connected("ann");
      const bob = await connected("bob");
      const channel = `chat:${protocol}-binary`;
      const sub = ann.newSubscription(channel);
      const subscribed = next(sub, "subscribed");
      sub.subscribe();
      await subscribed;
      const bytes = Uint8Array.from({ length: 300 }, (_, i) => (i * 7) % 256);
      const received = next(sub, "publication");
      await bob.publish(channel, bytes);
      assert.deepEqual((await received).data, bytes);
      const json = next(sub, "publication");
      await bob.publish(channel, { n: 1 });
      assert.deepEqual((await json).data, { n: 1 });
      const message = next(ann, "message");
      await bob.send("ann", bytes.subarray(0, 3));
      assert.deepEqual(await message, { from: "bob", data: bytes.slice(0, 3) });
    });

    test("errors of the hub reject the command with its code", async () => {
      const carol = await connected("carol", { getToken: () => makeToken("carol", { publish: ["own:*"] }) });
      await assert.rejects(carol.publish("chat:elsewhere", 1), (error) => error instanceof HubError && error.code === 403);
      // This hub has no rpc hook: its answer (501) comes back as the command's error.
      await assert.rejects(carol.rpc("echo", { x: 1 }), (error) => error instanceof HubError && error.code === 501);
      const sub = carol.newSubscription("bad channel!");
      const unsubscribed = next(sub, "unsubscribed");
      sub.subscribe();
      assert.equal((await unsubscribed).code, 400);
      assert.throws(() => carol.newSubscription("bad channel!"), HubError);
    });

    test("commands issued while reconnecting wait for the connection", async () => {
      const dan = await connected("dan", { minReconnectDelay: 50, maxReconnectDelay: 200 });
      const sub = dan.newSubscription(`chat:${protocol}-waiting`);
      sub.subscribe();
      await sub.ready(5000);
      const received = next(sub, "publication");
      dan.drop();
      assert.equal(dan.state, "connecting");
      const offset = await dan.publish(sub.channel, "sent while away");
      assert.equal((await received).offset, offset);
      assert.equal(dan.state, "connected");
    });

    test("the hub's reconnect: false stops the client", async () => {
      const eve = await connected("eve", { minReconnectDelay: 10, maxReconnectDelay: 20 });
      const connecting = [];
      eve.on("connecting", (event) => connecting.push(event));
      const disconnected = next(eve, "disconnected");
      await hub.api("disconnect", { user: "eve", reason: "banned" });
      assert.deepEqual(await disconnected, { code: 4503, reason: "banned", reconnect: false });
      assert.equal(eve.state, "disconnected");
      assert.deepEqual(connecting, []);
      await assert.rejects(eve.publish("chat:x", 1), Disconnected);
    });

    test("an invalid token stops the client with 4500", async () => {
      const client = newClient(hub, "mallory", { protocol, getToken: () => makeToken("mallory").slice(0, -4) + "AAAA" });
      const disconnected = next(client, "disconnected");
      client.connect();
      const event = await disconnected;
      assert.equal(event.code, 4500);
      assert.equal(event.reconnect, false);
      await assert.rejects(client.ready(), Disconnected);
    });
  });
}

test("without a WebSocket constructor the client says what to pass", async () => {
  if (globalThis.WebSocket) return; // Node 22 and later have one
  const client = new Client(hub.url, { token: makeToken("x") });
  const disconnected = next(client, "disconnected");
  client.connect();
  assert.match((await disconnected).reason, /websocket option/);
});

test("a token string without getToken connects too", async () => {
  const client = new Client(hub.url, { token: makeToken("frank"), websocket: WebSocket });
  client.connect();
  await client.ready(5000);
  assert.equal(client.user, "frank");
  client.disconnect();
  assert.equal(client.state, "disconnected");
});
