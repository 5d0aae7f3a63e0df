// Redis restarted without persistence under a hub: every stream starts again, and the
// hub says so per subscription (an unsubscribe push, code 2500). The client subscribes
// that channel again from its position and learns `recovered: false`; the connection
// and its other subscriptions stay.
import assert from "node:assert/strict";
import { afterEach, test } from "node:test";
import { disconnectAll, newClient, sleep, until } from "./support/clients.mjs";
import { Hub, Redis } from "./support/processes.mjs";

afterEach(disconnectAll);

/** Publish through the HTTP API until the hub accepts (503 while Redis is away). */
async function publish(hub, channel, data) {
  for (let attempt = 0; attempt < 200; attempt++) {
    const reply = await hub.api("publish", { channel, data });
    if (reply.result) return reply.result;
    await sleep(100);
  }
  throw new Error(`the hub did not accept a publication to ${channel}`);
}

test("a Redis restart ends one subscription's continuity, not the connection", async () => {
  const redis = await (await Redis.create()).start();
  const hub = await (await Hub.create("--broker", redis.url, "--broker-cooldown", "0.2", "--broker-cooldown-max", "1")).start();
  try {
    const client = newClient(hub, "reader", { minReconnectDelay: 100, maxReconnectDelay: 1000 });
    client.connect();
    await client.ready(10_000);
    const states = [];
    for (const state of ["connecting", "connected"]) client.on(state, () => states.push(state));
    const [moving, quiet] = ["load:moving", "load:quiet"].map((channel) => client.newSubscription(channel));
    const received = [];
    const subscribed = [];
    const unsubscribed = []; // why the hub ended the subscription
    moving.on("publication", (pub) => received.push(pub.data));
    moving.on("subscribed", (event) => subscribed.push(event));
    for (const sub of [moving, quiet]) sub.subscribe();
    await Promise.all([moving.ready(5000), quiet.ready(5000)]);
    moving.on("subscribing", (event) => unsubscribed.push(event));
    const quietEvents = [];
    quiet.on("subscribing", (event) => quietEvents.push(event.code));
    quiet.on("subscribed", (event) => quietEvents.push(event.recovered));
    const quietPubs = [];
    quiet.on("publication", (pub) => quietPubs.push(pub.data));
    await publish(hub, "load:moving", "before");
    await until(() => received.length === 1, "the first publication");

    await redis.stop();
    await redis.start();
    await publish(hub, "load:moving", "new stream");
    await until(() => subscribed.length === 2, "the subscription renewed");
    await publish(hub, "load:moving", "after");
    await until(() => received.includes("after"), "a publication on the new stream");
    assert.deepEqual(quietEvents, []); // untouched while another channel was renewed

    assert.deepEqual(states, []); // never reconnected
    assert.equal(unsubscribed.length, 1);
    assert.equal(unsubscribed[0].code, 2500);
    assert.match(unsubscribed[0].reason, /insufficient state/);
    assert.equal(subscribed[1].recovered, false);
    assert.equal(subscribed[1].wasRecovering, true);
    assert.notEqual(subscribed[1].epoch, subscribed[0].epoch);
    assert.equal(received[0], "before");
    assert.equal(received.at(-1), "after");
    assert.equal(quiet.state, "subscribed");
    // Its own stream restarted too: the first publication there shows it, on its own.
    await publish(hub, "load:quiet", "new stream");
    await until(() => quietEvents.length === 2, "the other subscription renewed");
    assert.deepEqual(quietEvents, [2500, false]);
    await publish(hub, "load:quiet", "once more");
    await until(() => quietPubs.includes("once more"), "the other subscription delivering");
    assert.deepEqual(states, []);
    client.disconnect();
  } finally {
    await hub.stop();
    await redis.stop();
  }
});
