import WebSocket from "ws";
import { Client } from "../../dist/index.js";
import { makeToken } from "./processes.mjs";

export const PROTOCOLS = ["json", "msgpack", "protobuf"];

const made = new Set();

/** A client of `hub` for `user` (Node 20 has no global WebSocket: the ws package). */
export function newClient(hub, user, options = {}) {
  const client = new Client(hub.url, { websocket: WebSocket, getToken: () => makeToken(user), ...options });
  made.add(client);
  return client;
}

/** Disconnect every client made here, so that a failed test does not keep the process alive. */
export function disconnectAll() {
  for (const client of made) client.disconnect();
  made.clear();
}

/** Resolves with the first `event` of `emitter` that satisfies `predicate`. */
export function next(emitter, event, predicate = () => true, timeout = 10_000) {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`no ${event} event within ${timeout} ms`)), timeout);
    const listener = (value) => {
      if (!predicate(value)) return;
      clearTimeout(timer);
      emitter.off(event, listener);
      resolve(value);
    };
    emitter.on(event, listener);
  });
}

/** Polls `predicate` until it is true, or fails after `timeout` ms. */
export async function until(predicate, what, timeout = 20_000) {
  const deadline = Date.now() + timeout;
  while (!predicate()) {
    if (Date.now() > deadline) throw new Error(`not true within ${timeout} ms: ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}

export const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));
