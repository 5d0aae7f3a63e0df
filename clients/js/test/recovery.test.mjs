// The hub killed and started again while a publisher keeps publishing: with Redis the
// subscriber gets every publication once and in order (recovered); with the memory broker
// the stream is new and the subscriber is told (recovered: false).
import assert from "node:assert/strict";
import { afterEach, test } from "node:test";
import { disconnectAll, newClient, next, PROTOCOLS, sleep, until } from "./support/clients.mjs";
import { Hub, makeToken, Redis } from "./support/processes.mjs";

afterEach(disconnectAll);

const FAST_RECONNECT = { minReconnectDelay: 100, maxReconnectDelay: 1000 };

/** Publishes 1, 2, 3... until stopped; `acked` holds the numbers the hub confirmed. */
function publishLoop(client, channel) {
  const loop = { acked: [], failed: [], running: true };
  loop.done = (async () => {
    for (let n = 1; loop.running; n++) {
      try {
        await client.publish(channel, { n });
        loop.acked.push(n);
      } catch {
        loop.failed.push(n); // lost with the connection: the hub may or may not have it
      }
      await sleep(10);
    }
  })();
  return loop;
}

async function restartUnderLoad(hub, protocol, channel) {
  const publisher = newClient(hub, "publisher", { protocol, ...FAST_RECONNECT });
  // After the crash the reader comes back only once the publisher has published 20 more,
  // so that its resubscribe has something to replay.
  let loop;
  let crashedAt;
  const getToken = async () => {
    if (crashedAt !== undefined) await until(() => loop.acked.length >= crashedAt + 20, "20 more publications");
    return makeToken("reader");
  };
  const reader = newClient(hub, "reader", { protocol, getToken, ...FAST_RECONNECT });
  publisher.connect();
  reader.connect();
  await Promise.all([publisher.ready(10_000), reader.ready(10_000)]);
  const sub = reader.newSubscription(channel);
  const received = [];
  const subscribed = [];
  sub.on("publication", (pub) => received.push(pub));
  sub.on("subscribed", (event) => subscribed.push(event));
  sub.subscribe();
  await sub.ready(5000);

  loop = publishLoop(publisher, channel);
  await until(() => loop.acked.length >= 50, "50 publications before the crash");
  crashedAt = loop.acked.length;
  await hub.stop("SIGKILL");
  await until(() => reader.state === "connecting" && publisher.state === "connecting", "both notice the crash");
  await hub.start();
  await until(() => subscribed.length === 2, "the subscription renewed");
  const resumedAt = loop.acked.length;
  await until(() => loop.acked.length >= resumedAt + 50, "50 publications after the restart");
  loop.running = false;
  await loop.done;
  const last = loop.acked.at(-1);
  await until(() => received.some((p) => p.data.n === last), "the last publication received");
  publisher.disconnect();
  reader.disconnect();
  return { received, subscribed, loop };
}

for (const protocol of PROTOCOLS) {
  test(`${protocol}: a hub restart on Redis loses nothing and repeats nothing`, async () => {
    const redis = await (await Redis.create()).start();
    const hub = await (await Hub.create("--broker", redis.url)).start();
    try {
      const { received, subscribed, loop } = await restartUnderLoad(hub, protocol, "load:redis");
      assert.equal(subscribed[1].recovered, true);
      assert.equal(subscribed[1].wasRecovering, true);
      const numbers = received.map((p) => p.data.n);
      const offsets = received.map((p) => p.offset);
      for (let i = 1; i < received.length; i++) {
        assert.ok(numbers[i] > numbers[i - 1], `in order, once each: ${numbers[i - 1]} then ${numbers[i]}`);
        assert.equal(offsets[i], offsets[i - 1] + 1, "no gap in the stream");
      }
      const got = new Set(numbers);
      assert.deepEqual(loop.acked.filter((n) => !got.has(n)), [], "every confirmed publication arrived");
      assert.ok(received.some((p) => p.recovered), "some publications came from the replay");
    } finally {
      await hub.stop();
      await redis.stop();
    }
  });
}

test("a hub restart on the memory broker reports recovered: false", async () => {
  const hub = await (await Hub.create()).start();
  try {
    const { received, subscribed, loop } = await restartUnderLoad(hub, "json", "load:memory");
    assert.equal(subscribed[1].recovered, false);
    assert.equal(subscribed[1].wasRecovering, true);
    const numbers = received.map((p) => p.data.n);
    for (let i = 1; i < numbers.length; i++) assert.ok(numbers[i] > numbers[i - 1], "in order, once each");
    assert.ok(!received.some((p) => p.recovered), "nothing replayed from a lost stream");
    const afterRestart = loop.acked.slice(-20);
    assert.ok(afterRestart.every((n) => numbers.includes(n)), "publications after the restart arrive");
  } finally {
    await hub.stop();
  }
});

test("the heartbeat notices a hub that stopped answering", async () => {
  const hub = await (await Hub.create("--ping-interval", "1")).start();
  try {
    const client = newClient(hub, "watcher", { pingTimeout: 500, ...FAST_RECONNECT });
    client.connect();
    await client.ready(10_000);
    const lost = next(client, "connecting");
    hub.child.kill("SIGSTOP"); // the socket stays open; nothing answers
    try {
      const event = await lost;
      assert.equal(event.reason, "no reply to ping");
    } finally {
      hub.child.kill("SIGCONT");
    }
    await client.ready(10_000);
    client.disconnect();
  } finally {
    await hub.stop();
  }
});
