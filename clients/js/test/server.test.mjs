// What the hub gained after the client's first version: rpc hooks, subscription tokens for
// namespaces that require them, sub_refresh, the token-expired unsubscribe push and
// server-side subscriptions, against a real `python -m fastws` with in-process hooks.
import assert from "node:assert/strict";
import { after, afterEach, before, test } from "node:test";
import { HubError } from "../dist/index.js";
import { disconnectAll, newClient, next, PROTOCOLS, sleep, until } from "./support/clients.mjs";
import { Hub, makeSubscriptionToken, makeToken } from "./support/processes.mjs";

afterEach(disconnectAll);

let hub;
before(async () => {
  hub = await (await Hub.create("--hooks", "clients.js.test.rpc_hooks")).start();
});
after(() => hub.stop("SIGTERM"));

async function connected(user, options = {}) {
  const client = newClient(hub, user, options);
  client.connect();
  await client.ready(10_000);
  return client;
}

test("rpc is answered by the hub's rpc hook", async () => {
  const ann = await connected("ann");
  assert.deepEqual(await ann.rpc("echo", { x: 1 }), { method: "echo", data: { x: 1 }, user: "ann" });
});

test("a namespace that requires a subscription token: getToken is asked, null means none", async () => {
  const ann = await connected("ann");
  const asked = [];
  const getToken = (channel) => {
    asked.push(channel);
    return channel.startsWith("vip:") ? makeSubscriptionToken("ann", channel) : null;
  };
  const vip = ann.newSubscription("vip:1", { getToken });
  vip.subscribe();
  await vip.ready(5000);
  const chat = ann.newSubscription("chat:open", { getToken });
  chat.subscribe();
  await chat.ready(5000);
  assert.deepEqual(asked, ["vip:1", "chat:open"]);

  const refused = ann.newSubscription("vip:2");
  const ended = next(refused, "unsubscribed");
  refused.subscribe();
  assert.equal((await ended).code, 403);
});

test("sub_refresh replaces a subscription token before it expires", async () => {
  const ann = await connected("ann");
  let calls = 0;
  const sub = ann.newSubscription("vip:refresh", {
    getToken: (channel) => makeSubscriptionToken("ann", channel, ++calls === 1 ? 2 : 3600),
  });
  const renewals = [];
  sub.on("subscribing", (event) => renewals.push(event));
  sub.subscribe();
  await sub.ready(5000);
  await until(() => calls === 2, "a second token asked for sub_refresh");
  await sleep(2500); // past the first token's exp: a subscription not refreshed would have ended
  assert.equal(sub.state, "subscribed");
  assert.equal(renewals.length, 1); // only the first subscribe
  const received = next(sub, "publication");
  await sub.publish("still here");
  assert.equal((await received).data, "still here");
});

test("the token-expired unsubscribe push subscribes again with a new token, recovered", async () => {
  const ann = await connected("ann");
  let calls = 0;
  const sub = ann.newSubscription("vip:expiry", {
    getToken: (channel) => {
      calls += 1;
      if (calls === 2) throw new Error("no token for sub_refresh this time");
      return makeSubscriptionToken("ann", channel, calls === 1 ? 2 : 3600);
    },
  });
  const errors = [];
  sub.on("error", (event) => errors.push(event.type));
  sub.subscribe();
  await sub.ready(5000);
  const expired = next(sub, "subscribing", (event) => event.code === 2501);
  const again = next(sub, "subscribed", (event) => event.wasRecovering);
  await expired;
  assert.equal((await again).recovered, true);
  assert.equal(calls, 3);
  assert.deepEqual(errors, ["subRefresh"]);
});

test("server API subscribe and unsubscribe pushes are client events", async () => {
  const bob = await connected("bob");
  const subscribed = next(bob, "subscribed", (event) => event.channel === "chat:by-server");
  assert.deepEqual(await hub.api("subscribe", { user: "bob", channel: "chat:by-server" }), { result: {} });
  assert.equal((await subscribed).recovered, false);
  const received = next(bob, "publication", (pub) => pub.channel === "chat:by-server");
  await hub.api("publish", { channel: "chat:by-server", data: { n: 1 } });
  assert.deepEqual((await received).data, { n: 1 });
  const unsubscribed = next(bob, "unsubscribed", (event) => event.channel === "chat:by-server");
  await hub.api("unsubscribe", { user: "bob", channel: "chat:by-server" });
  assert.equal((await unsubscribed).code, 2000);
});

for (const protocol of PROTOCOLS) {
  test(`a token's subs are recovered across a reconnect, each publication once and in order (${protocol})`, async () => {
    const channel = `chat:token-subs-${protocol}`;
    let offline = Promise.resolve(); // a reconnect waits for this token: what is published meanwhile is missed
    const getToken = async () => {
      await offline;
      return makeToken("carol", { subs: [channel] });
    };
    const carol = newClient(hub, "carol", { getToken, protocol, minReconnectDelay: 50 });
    const received = [];
    carol.on("publication", (pub) => received.push(pub));
    const first = next(carol, "subscribed", (event) => event.channel === channel);
    carol.connect();
    assert.equal((await first).recovered, false);
    await hub.api("publish", { channel, data: 1 });
    await until(() => received.length === 1, "the first publication");

    const renewed = next(carol, "subscribed", (event) => event.channel === channel && event.wasRecovering);
    let back;
    offline = new Promise((resolve) => (back = resolve));
    carol.drop();
    await hub.api("publish", { channel, data: 2 });
    await hub.api("publish", { channel, data: 3 });
    back();
    assert.equal((await renewed).recovered, true);
    await hub.api("publish", { channel, data: 4 });
    await until(() => received.length === 4, "four publications");
    assert.deepEqual(received.map((pub) => pub.data), [1, 2, 3, 4]);
    assert.deepEqual(received.map((pub) => pub.recovered), [false, true, true, false]);
  });
}
