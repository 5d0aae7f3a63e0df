import { backoffDelay, mayReconnect } from "./backoff.js";
import { type Codec, dataField, loadCodec, type Protocol, receivedData } from "./codec.js";
import { Emitter } from "./emitter.js";
import { CommandTimeout, Disconnected, HubError } from "./errors.js";
import { publication, type HistoryOptions, Subscription, type SubscriptionOptions } from "./subscription.js";
import { refreshDelay, tokenExpiry } from "./token.js";
import type {
  ClientInfo,
  CloseEvent,
  ConnectedEvent,
  DisconnectedEvent,
  ErrorEvent,
  History,
  JoinLeaveEvent,
  Message,
  PresenceStats,
  Publication,
  State,
  StreamPosition,
  SubscribedEvent,
  WebSocketConstructor,
} from "./types.js";

export interface ClientOptions {
  /** A connection token (JWT). */
  token?: string;
  /** Called for a token before every connection attempt and before the token expires. */
  getToken?: () => string | Promise<string>;
  /**
   * `"json"` (default), `"msgpack"` (loads `@msgpack/msgpack` when the client connects) or
   * `"protobuf"` (no dependency). Binary data is a Uint8Array whichever is used.
   */
  protocol?: Protocol;
  /** Backoff window of the first reconnect, in ms (default 500); it doubles per attempt. */
  minReconnectDelay?: number;
  /** Largest backoff window, in ms (default 20000). */
  maxReconnectDelay?: number;
  /** Longest wait for a command's reply, connection wait included, in ms (default 10000). */
  timeout?: number;
  /** How long a heartbeat ping may wait for its reply before the hub is counted as gone, in ms (default 10000). */
  pingTimeout?: number;
  /** Shown in debug logs. */
  name?: string;
  /** Log what happens with `console.debug`. */
  debug?: boolean;
  /** A WebSocket constructor where there is no global one (Node 20: the `ws` package). */
  websocket?: WebSocketConstructor;
}

export interface ClientEvents extends Record<string, unknown> {
  connecting: CloseEvent;
  connected: ConnectedEvent;
  disconnected: DisconnectedEvent;
  error: ErrorEvent;
  message: Message;
  /** Publications, joins and leaves of channels with no Subscription here (server-side ones). */
  publication: Publication;
  /** The server subscribed this connection to a channel (or renewed it after a reconnect). */
  subscribed: SubscribedEvent;
  /** The server ended a server-side subscription. */
  unsubscribed: CloseEvent & { channel: string };
  join: JoinLeaveEvent;
  leave: JoinLeaveEvent;
}

interface Command {
  id: number;
  method: string;
  params: unknown;
  resolve: (result: any) => void;
  reject: (error: Error) => void;
  timer?: Timer;
}

type Timer = ReturnType<typeof setTimeout>;
type Defaulted = "protocol" | "minReconnectDelay" | "maxReconnectDelay" | "timeout" | "pingTimeout";

interface DisconnectPush {
  code: number;
  reason: string;
  reconnect: boolean;
}

/** Replies to `connect` that another attempt with the same settings cannot fix. */
const FATAL_CONNECT_ERRORS = new Set([400, 403, 404, 413]);
const TOKEN_EXPIRED = 4501;
const NOT_FOUND = 404;
/** A connection that lasted this long resets the backoff. */
const STABLE_AFTER = 10_000;
/** What a socket that died without a close frame reports. */
const ABNORMAL = 1006;

/**
 * One logical connection to a fastws hub that outlives the network.
 *
 * It reconnects with exponential backoff and full jitter, gets a fresh token for every
 * attempt, renews every subscription from its last position, and holds commands issued
 * while it is reconnecting until the connection is back (at most `timeout` ms).
 */
export class Client extends Emitter<ClientEvents> {
  state: State = "disconnected";
  /** This connection's id, as presence, join and leave show it. */
  clientId?: string;
  user?: string;
  readonly options: ClientOptions & Required<Pick<ClientOptions, Defaulted>>;
  /** @internal The current socket; changes with every connection. */
  _connection: WebSocket | null = null;
  private codec?: Codec;
  private lastId = 0;
  private inFlight = new Map<number, Command>();
  private waiting: Command[] = [];
  private subs = new Map<string, Subscription>();
  /** Server-side subscriptions: the position last delivered, sent with `connect` to recover them. */
  private serverSubs = new Map<string, StreamPosition>();
  private attempt = 0;
  private serial = 0; // bumped to cancel an attempt in progress
  private timers: Partial<Record<"reconnect" | "connect" | "heartbeat" | "refresh" | "stable", Timer>> = {};
  private idleLimit = 0;
  private lastReceived = 0;
  private disconnectPush?: DisconnectPush;
  private freshToken?: string;
  private draining = false;
  private offline = false;

  constructor(
    readonly url: string,
    options: ClientOptions = {},
  ) {
    super();
    this.options = {
      protocol: "json",
      minReconnectDelay: 500,
      maxReconnectDelay: 20_000,
      timeout: 10_000,
      pingTimeout: 10_000,
      ...options,
    };
    const page = globalThis as any;
    if (typeof page.window !== "undefined" && page.addEventListener) {
      page.addEventListener("offline", () => this.goOffline());
      page.addEventListener("online", () => this.goOnline());
    }
  }

  // -- lifecycle ------------------------------------------------------------------------

  /** Start connecting; from then on the client reconnects by itself until `disconnect()`. */
  connect(): void {
    if (this.state !== "disconnected") return;
    this.attempt = 0;
    this.setState("connecting", { code: 0, reason: "connect called" });
    this.open();
  }

  /** Close the connection for good (until `connect()`); waiting commands fail. */
  disconnect(): void {
    if (this.state !== "disconnected") this.stop(1000, "disconnect called");
  }

  /** Lose the socket as a network failure would, without a close handshake: the client reconnects. */
  drop(): void {
    if (this._connection) this.lose(this._connection, ABNORMAL, "connection dropped");
  }

  /** Resolves once connected; rejects when the client stops first or after `timeout` ms. */
  ready(timeout?: number): Promise<void> {
    if (this.state === "connected") return Promise.resolve();
    if (this.state === "disconnected") return Promise.reject(notConnected());
    return new Promise((resolve, reject) => {
      const settle = (error?: Error) => {
        this.off("connected", onConnected).off("disconnected", onDisconnected);
        clearTimeout(timer);
        if (error) reject(error);
        else resolve();
      };
      const onConnected = () => settle();
      const onDisconnected = (event: DisconnectedEvent) => settle(new Disconnected(event.code, event.reason, false));
      const timer =
        timeout === undefined ? undefined : setTimeout(() => settle(new Error("not connected in time")), timeout);
      this.on("connected", onConnected).on("disconnected", onDisconnected);
    });
  }

  // -- subscriptions --------------------------------------------------------------------

  /** A subscription to `channel` (call its `subscribe()`); one per channel per client. */
  newSubscription(channel: string, options?: SubscriptionOptions): Subscription {
    if (this.subs.has(channel)) throw new HubError(409, `there is already a subscription to ${channel}`);
    const sub = new Subscription(this, channel, options);
    this.subs.set(channel, sub);
    return sub;
  }

  getSubscription(channel: string): Subscription | undefined {
    return this.subs.get(channel);
  }

  subscriptions(): Subscription[] {
    return [...this.subs.values()];
  }

  /** Unsubscribe and forget the subscription, so that its channel can have a new one. */
  removeSubscription(sub: Subscription): void {
    sub.unsubscribe();
    if (this.subs.get(sub.channel) === sub) this.subs.delete(sub.channel);
  }

  // -- commands -------------------------------------------------------------------------

  /** Publish `data` to `channel`; resolves to its offset in the channel's stream. */
  async publish(channel: string, data: unknown): Promise<number> {
    return (await this.call("publish", { channel, ...dataField(this.codec, data) })).offset;
  }

  /** A private message to every connection of `user` (their `message` event). */
  async send(user: string, data: unknown): Promise<void> {
    await this.call("send", { user, ...dataField(this.codec, data) });
  }

  /** Who is in `channel`: client id to ClientInfo. */
  async presence(channel: string): Promise<Record<string, ClientInfo>> {
    const clients = (await this.call("presence", { channel })).clients ?? {};
    const result: Record<string, ClientInfo> = {};
    for (const [client, item] of Object.entries<any>(clients)) result[client] = clientInfo(client, item);
    return result;
  }

  /** How many connections and distinct users are in `channel` (counted from presence). */
  async presenceStats(channel: string): Promise<PresenceStats> {
    const clients = Object.values(await this.presence(channel));
    return { numClients: clients.length, numUsers: new Set(clients.map((c) => c.user)).size };
  }

  /** Publications kept for `channel`, oldest first (newest first with `reverse`). */
  async history(channel: string, { limit, since, reverse }: HistoryOptions = {}): Promise<History> {
    const params: Record<string, unknown> = { channel };
    if (since) params.since = since;
    if (limit !== undefined) params.limit = limit;
    if (reverse) params.reverse = true;
    const result = await this.call("history", params);
    const publications: Publication[] = (result.publications ?? []).map((p: any) => publication(channel, p));
    return { epoch: result.epoch, offset: result.offset, publications };
  }

  /** Call `method` of the application behind the hub. */
  async rpc(method: string, data?: unknown): Promise<unknown> {
    return (await this.call("rpc", { method, data })).data;
  }

  /** A round trip to the hub. */
  async ping(): Promise<void> {
    await this.call("ping", {});
  }

  /** Send any command; while reconnecting it waits for the connection (within `timeout`). */
  call(method: string, params: unknown): Promise<any> {
    return new Promise((resolve, reject) => {
      if (this.state === "disconnected") return reject(notConnected());
      const command: Command = { id: 0, method, params, resolve, reject };
      command.timer = setTimeout(() => {
        this.inFlight.delete(command.id);
        this.waiting = this.waiting.filter((c) => c !== command);
        reject(new CommandTimeout(method, this.options.timeout));
      }, this.options.timeout);
      if (this.state === "connected" && !this.draining) this.transmit(command);
      else this.waiting.push(command);
    });
  }

  /** @internal Send a command on the current connection now. */
  _request(method: string, params: unknown, timeout = this.options.timeout): Promise<any> {
    return new Promise((resolve, reject) => {
      const command: Command = { id: 0, method, params, resolve, reject };
      command.timer = setTimeout(() => {
        this.inFlight.delete(command.id);
        reject(new CommandTimeout(method, timeout));
      }, timeout);
      this.transmit(command);
    });
  }

  /** @internal */
  _unsubscribe(channel: string): void {
    this._request("unsubscribe", { channel }).catch(() => {}); // a lost connection unsubscribes too
  }

  private transmit(command: Command): void {
    const ws = this._connection;
    if (!ws || ws.readyState !== 1 || !this.codec) {
      clearTimeout(command.timer);
      command.reject(new Disconnected(ABNORMAL, "not connected"));
      return;
    }
    command.id = ++this.lastId;
    this.inFlight.set(command.id, command);
    this.log("send", command.method, command.params);
    ws.send(this.codec.encode({ id: command.id, method: command.method, params: command.params }));
  }

  // -- connection -----------------------------------------------------------------------

  private async open(): Promise<void> {
    const serial = ++this.serial;
    let token: string | undefined;
    try {
      this.codec ??= await loadCodec(this.options.protocol);
      token = this.freshToken ?? (this.options.getToken ? await this.options.getToken() : this.options.token);
      this.freshToken = undefined;
    } catch (error) {
      if (serial !== this.serial) return;
      this.emit("error", { type: "connect", error: error as Error });
      if (this.codec) this.scheduleReconnect();
      else this.stop(1000, `cannot load the ${this.options.protocol} codec: ${error}`);
      return;
    }
    if (serial !== this.serial || this.state !== "connecting") return;
    const WebSocketClass = this.options.websocket ?? (globalThis as any).WebSocket;
    if (!WebSocketClass) {
      this.stop(1000, "no WebSocket here: pass the websocket option (the ws package in Node 20)");
      return;
    }
    this.log("opening", this.url);
    const ws: WebSocket = new WebSocketClass(this.url, this.codec.subprotocol);
    ws.binaryType = "arraybuffer";
    this._connection = ws;
    this.disconnectPush = undefined;
    ws.onopen = () => this.sendConnect(ws, token);
    ws.onmessage = (event) => this.onFrame(ws, event.data);
    ws.onclose = (event) => this.lose(ws, event.code, event.reason);
    ws.onerror = () => {}; // the close event follows
    this.timers.connect = setTimeout(() => this.lose(ws, ABNORMAL, "connect timed out"), this.options.timeout);
  }

  private sendConnect(ws: WebSocket, token: string | undefined): void {
    if (this.codec!.subprotocol !== ws.protocol && this.options.protocol !== "json") {
      this.lose(ws, 4502, `the hub did not accept the ${this.codec!.subprotocol} subprotocol`, false);
      return;
    }
    const params: Record<string, unknown> = token === undefined ? {} : { token };
    if (this.serverSubs.size) params.subs = Object.fromEntries(this.serverSubs);
    this._request("connect", params).then(
      (result) => this.connected(ws, result, token),
      (error) => {
        if (error instanceof Disconnected) return;
        this.emit("error", { type: "connect", error });
        // A bad token is followed by a disconnect push and the close (4500/4501).
        if (error.code !== 401) this.lose(ws, 4000, error.message, !FATAL_CONNECT_ERRORS.has(error.code));
      },
    );
  }

  private connected(ws: WebSocket, result: any, token: string | undefined): void {
    if (ws !== this._connection) return;
    clearTimeout(this.timers.connect);
    this.clientId = result.client;
    this.user = result.user;
    this.setState("connected", { client: result.client, user: result.user, ping: result.ping ?? 0 });
    this.timers.stable = setTimeout(() => (this.attempt = 0), STABLE_AFTER);
    this.startHeartbeat(result.ping ?? 0);
    this.scheduleRefresh(token);
    for (const sub of this.subs.values()) if (sub.state === "subscribing") sub._send();
    this.flushWaiting();
  }

  private flushWaiting(): void {
    const waiting = this.waiting;
    this.waiting = [];
    for (const command of waiting) this.transmit(command);
  }

  private onFrame(ws: WebSocket, data: string | ArrayBuffer): void {
    if (ws !== this._connection) return;
    this.lastReceived = Date.now();
    let message: any;
    try {
      message = this.codec!.decode(data);
    } catch (error) {
      this.emit("error", { type: "decode", error: error as Error });
      return;
    }
    this.log("receive", message);
    if (message === null || typeof message !== "object") return;
    if (message.id !== undefined) this.onReply(message);
    else this.onPush(ws, message);
  }

  private onReply(message: any): void {
    const command = this.inFlight.get(message.id);
    if (!command) return; // timed out and forgotten
    this.inFlight.delete(message.id);
    clearTimeout(command.timer);
    if (message.error) command.reject(new HubError(message.error.code ?? 500, message.error.message ?? "error"));
    else command.resolve(message.result ?? {});
    if (this.draining && this.inFlight.size === 0) this.reconnectWithFreshToken();
  }

  private onPush(ws: WebSocket, message: any): void {
    const sub = message.channel === undefined ? undefined : this.subs.get(message.channel);
    const active = sub && sub.state !== "unsubscribed";
    switch (message.push) {
      case "pub": {
        const pub = publication(message.channel, message);
        if (active) sub._receive(pub);
        else this.serverPublication(pub);
        break;
      }
      case "subscribe":
        if (!active && ws === this._connection) this.serverSubscribed(message);
        break;
      case "join":
      case "leave": {
        const event = { channel: message.channel, ...clientInfo(message.info?.client, message.info ?? {}) };
        if (active) sub._presenceEvent(message.push, event);
        else this.emit(message.push, event);
        break;
      }
      case "message":
        this.emit(
          "message",
          message.from === undefined
            ? { data: receivedData(message) }
            : { from: message.from, data: receivedData(message) },
        );
        break;
      case "unsubscribe":
        if (ws !== this._connection) break;
        if (active) sub._unsubscribedByHub({ code: message.code ?? 0, reason: message.reason ?? "" });
        else if (this.serverSubs.delete(message.channel))
          this.emit("unsubscribed", { channel: message.channel, code: message.code ?? 0, reason: message.reason ?? "" });
        break;
      case "disconnect":
        if (ws === this._connection) this.disconnectPush = message;
        break;
    }
  }

  /** A server-side subscription began or was renewed: its replayed publications follow the event. */
  private serverSubscribed(message: any): void {
    const { channel, epoch, offset } = message;
    const known = this.serverSubs.get(channel);
    const recovered = message.recovered === true && known !== undefined;
    this.serverSubs.set(channel, { epoch, offset: recovered ? known.offset : offset });
    this.emit("subscribed", { channel, epoch, offset, recovered, wasRecovering: known !== undefined });
    for (const item of message.publications ?? []) this.serverPublication(publication(channel, item, recovered));
    const position = this.serverSubs.get(channel)!;
    if (offset > position.offset) position.offset = offset;
  }

  private serverPublication(pub: Publication): void {
    const position = this.serverSubs.get(pub.channel);
    if (position) {
      if (pub.offset <= position.offset) return; // replay and push overlap
      position.offset = pub.offset;
    }
    this.emit("publication", pub);
  }

  /**
   * The socket `ws` is gone (closed by either side, or given up on): settle what waited on
   * it, then reconnect after a backoff delay or stop, as the close code and push say.
   */
  private lose(ws: WebSocket, code: number, reason: string, reconnect?: boolean, immediately = false): void {
    if (ws !== this._connection) return;
    ws.onopen = ws.onmessage = ws.onclose = null;
    if (ws.readyState <= 1) ws.close();
    this._connection = null;
    this.draining = false;
    for (const name of ["connect", "heartbeat", "refresh", "stable"] as const) clearTimeout(this.timers[name]);
    const push = this.disconnectPush;
    if (push) ({ code, reason, reconnect } = push);
    reconnect ??= mayReconnect(code);
    if (code === TOKEN_EXPIRED && this.options.getToken) reconnect = true; // a fresh token fixes it
    this.log("closed", code, reason, reconnect ? "will reconnect" : "stopping");
    const error = new Disconnected(code, reason, reconnect);
    const inFlight = [...this.inFlight.values()];
    this.inFlight.clear();
    for (const command of inFlight) {
      clearTimeout(command.timer);
      command.reject(error);
    }
    for (const sub of this.subs.values()) sub._lost({ code, reason });
    if (this.state === "disconnected") return;
    if (!reconnect) {
      this.stop(code, reason);
      return;
    }
    this.setState("connecting", { code, reason });
    if (immediately) this.open();
    else this.scheduleReconnect();
  }

  private scheduleReconnect(): void {
    clearTimeout(this.timers.reconnect);
    if (this.offline) return; // the browser's online event reconnects
    const delay = backoffDelay(this.attempt++, this.options.minReconnectDelay, this.options.maxReconnectDelay);
    this.log("reconnecting in", Math.round(delay), "ms");
    this.timers.reconnect = setTimeout(() => this.open(), delay);
  }

  private stop(code: number, reason: string): void {
    this.setState("disconnected", undefined);
    this.serial++;
    clearTimeout(this.timers.reconnect);
    if (this._connection) this.lose(this._connection, code, reason, false);
    const error = new Disconnected(code, reason, false);
    const waiting = this.waiting;
    this.waiting = [];
    for (const command of waiting) {
      clearTimeout(command.timer);
      command.reject(error);
    }
    this.emit("disconnected", { code, reason, reconnect: false });
  }

  private setState(state: State, event: CloseEvent | ConnectedEvent | undefined): void {
    this.state = state;
    if (state !== "disconnected") this.emit(state, event as any);
  }

  // -- heartbeat, token refresh, online/offline -------------------------------------------

  /** Ping only after `ping` seconds without a frame from the hub: a busy connection costs nothing. */
  private startHeartbeat(ping: number): void {
    this.idleLimit = ping * 1000;
    this.lastReceived = Date.now();
    if (this.idleLimit) this.timers.heartbeat = setTimeout(() => this.checkAlive(), this.idleLimit);
  }

  private checkAlive(): void {
    const ws = this._connection;
    if (!ws) return;
    const idle = Date.now() - this.lastReceived;
    if (idle < this.idleLimit) {
      this.timers.heartbeat = setTimeout(() => this.checkAlive(), this.idleLimit - idle);
      return;
    }
    const alive = () => {
      if (ws === this._connection) this.timers.heartbeat = setTimeout(() => this.checkAlive(), this.idleLimit);
    };
    this._request("ping", {}, this.options.pingTimeout).then(alive, (error) => {
      if (error instanceof CommandTimeout) this.lose(ws, ABNORMAL, "no reply to ping");
      else if (!(error instanceof Disconnected)) alive(); // an error reply: the hub is there
    });
  }

  private scheduleRefresh(token: string | undefined): void {
    const exp = token && this.options.getToken ? tokenExpiry(token) : undefined;
    if (exp !== undefined) this.timers.refresh = setTimeout(() => this.refreshToken(), refreshDelay(exp));
  }

  /** Before the token expires: a new one through `refresh`, or a reconnect where the hub has no such command. */
  private async refreshToken(): Promise<void> {
    const ws = this._connection;
    let token: string;
    try {
      token = await this.options.getToken!();
    } catch (error) {
      this.emit("error", { type: "refresh", error: error as Error });
      const retry = () => this.refreshToken();
      if (ws === this._connection) this.timers.refresh = setTimeout(retry, this.options.minReconnectDelay);
      return;
    }
    if (ws !== this._connection) return;
    try {
      await this._request("refresh", { token });
      this.scheduleRefresh(token);
    } catch (error) {
      if (ws !== this._connection || !(error instanceof HubError)) return;
      if (error.code !== NOT_FOUND) {
        this.emit("error", { type: "refresh", error });
        return;
      }
      // Hold new commands, let the ones in flight finish, then connect again with the new token.
      this.freshToken = token;
      this.draining = true;
      if (this.inFlight.size === 0) this.reconnectWithFreshToken();
    }
  }

  private reconnectWithFreshToken(): void {
    if (this._connection) this.lose(this._connection, 1000, "token refresh", true, true);
  }

  private goOffline(): void {
    this.offline = true;
    if (this._connection) this.lose(this._connection, ABNORMAL, "the browser went offline");
  }

  private goOnline(): void {
    this.offline = false;
    if (this.state === "connecting" && !this._connection) {
      clearTimeout(this.timers.reconnect);
      this.open();
    }
  }

  private log(...args: unknown[]): void {
    if (this.options.debug) console.debug("fastws-client", this.options.name ?? "", ...args);
  }
}

function clientInfo(client: string, item: any): ClientInfo {
  const result: ClientInfo = { client, user: item.user };
  if (item.info !== undefined) result.info = item.info;
  return result;
}

function notConnected(): Disconnected {
  return new Disconnected(0, "not connected: call connect() first", false);
}
