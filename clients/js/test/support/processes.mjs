// `python -m fastws` and `redis-server` as child processes of a test, on ports picked here,
// so that a test can SIGKILL them and start them again on the same port.
import { spawn } from "node:child_process";
import { createHmac } from "node:crypto";
import { mkdtempSync, writeFileSync } from "node:fs";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";

export const ROOT = fileURLToPath(new URL("../../../../", import.meta.url));
export const SECRET = "a-test-secret-of-at-least-thirty-two-bytes";
export const API_KEY = "test-api-key";
const PYTHON = process.env.PYTHON ?? "python3";

// History deep enough that a subscriber away during a restart under load recovers everything.
const CONFIG = `
[[namespaces]]
name = "chat"
history_size = 100
history_ttl = 300
presence = true
join_leave = true

[[namespaces]]
name = "vip"
require_subscription_token = true

[[namespaces]]
name = "load"
history_size = 100000
history_ttl = 300
`;

/** An HS256 JWT for `sub`, as PyJWT makes them; every permission unless `claims` says otherwise. */
export function makeToken(sub, claims = {}) {
  const encode = (value) => Buffer.from(JSON.stringify(value)).toString("base64url");
  const body = `${encode({ alg: "HS256", typ: "JWT" })}.${encode({ sub, channels: ["*"], publish: ["*"], history: ["*"], presence: ["*"], send: ["*"], ...claims })}`;
  return `${body}.${createHmac("sha256", SECRET).update(body).digest("base64url")}`;
}

/** A subscription token of `sub` for `channel`, expiring in `ttl` seconds. */
export function makeSubscriptionToken(sub, channel, ttl = 3600) {
  const encode = (value) => Buffer.from(JSON.stringify(value)).toString("base64url");
  const exp = Math.floor(Date.now() / 1000) + ttl;
  const body = `${encode({ alg: "HS256", typ: "JWT" })}.${encode({ sub, channel, exp })}`;
  return `${body}.${createHmac("sha256", SECRET).update(body).digest("base64url")}`;
}

export function freePort() {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.on("error", reject);
    server.listen(0, "127.0.0.1", () => {
      const { port } = server.address();
      server.close(() => resolve(port));
    });
  });
}

class Child {
  constructor(command, args, ready) {
    this.command = command;
    this.args = args;
    this.ready = ready; // a pattern of the line that says it serves
    this.output = "";
  }

  start(env = process.env) {
    return new Promise((resolve, reject) => {
      const child = spawn(this.command, this.args, { cwd: ROOT, env, stdio: ["ignore", "pipe", "pipe"] });
      this.child = child;
      const timer = setTimeout(() => reject(new Error(`${this.command} did not start:\n${this.output}`)), 30_000);
      const read = (chunk) => {
        this.output = (this.output + chunk).slice(-20_000);
        if (this.ready.test(this.output)) {
          clearTimeout(timer);
          resolve(this);
        }
      };
      child.stdout.on("data", read);
      child.stderr.on("data", read);
      child.on("exit", (code) => {
        clearTimeout(timer);
        reject(new Error(`${this.command} exited with ${code}:\n${this.output}`));
      });
    });
  }

  /** SIGKILL (a crash; SIGTERM with `signal`), and wait for the exit. */
  stop(signal = "SIGKILL") {
    const child = this.child;
    if (!child || child.exitCode !== null || child.signalCode !== null) return Promise.resolve();
    this.output = "";
    return new Promise((resolve) => {
      child.once("exit", resolve);
      child.kill(signal);
    });
  }
}

/** `python -m fastws` with a token key, so it runs as in production. */
export class Hub extends Child {
  static async create(...extraArgs) {
    const directory = mkdtempSync(join(tmpdir(), "fastws-js-"));
    const config = join(directory, "hub.toml");
    writeFileSync(config, CONFIG);
    const port = await freePort();
    const args = ["-m", "fastws", "--port", String(port), "--config", config, "--jwt-secret", SECRET, "--api-key", API_KEY, ...extraArgs];
    return new Hub(port, args);
  }

  constructor(port, args) {
    super(PYTHON, args, /fastws hub listening on/);
    this.port = port;
    this.url = `ws://127.0.0.1:${port}/connection`;
  }

  start() {
    const env = { ...process.env, PYTHONPATH: ROOT + (process.env.PYTHONPATH ? `:${process.env.PYTHONPATH}` : "") };
    for (const name of Object.keys(env)) if (name.startsWith("FASTWS_")) delete env[name];
    return super.start(env);
  }

  /** POST to the hub's HTTP API; returns the parsed body. */
  async api(path, body) {
    const reply = await fetch(`http://127.0.0.1:${this.port}/api/v1/${path}`, {
      method: "POST",
      headers: { Authorization: `apikey ${API_KEY}`, "Content-Type": "application/json" },
      body: JSON.stringify(body),
    });
    return reply.json();
  }
}

/** A private redis-server without persistence: a kill loses everything. */
export class Redis extends Child {
  static async create() {
    const port = await freePort();
    return new Redis(port);
  }

  constructor(port) {
    super("redis-server", ["--port", String(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"], /Ready to accept connections/);
    this.url = `redis://127.0.0.1:${port}/0`;
  }
}
