import { backoffDelay } from "./backoff.js";
import { receivedData } from "./codec.js";
import type { Client } from "./client.js";
import { Emitter } from "./emitter.js";
import { refreshDelay, tokenExpiry } from "./token.js";
import { Disconnected, type HubError } from "./errors.js";
import type {
  CloseEvent,
  ErrorEvent,
  History,
  JoinLeaveEvent,
  PresenceStats,
  Publication,
  StreamPosition,
  SubscribedEvent,
  SubscriptionState,
  ClientInfo,
} from "./types.js";

export interface SubscriptionOptions {
  /** Start from this position: the hub replays what followed it (or says it cannot). */
  since?: StreamPosition;
  /**
   * Called before each subscribe for a subscription token (`$` channels, namespaces with
   * `require_subscription_token`); `null` or `undefined` means none is needed. Called again
   * before the token's `exp` (`sub_refresh`) and when the hub ends it as expired.
   */
  getToken?: (channel: string) => string | null | undefined | Promise<string | null | undefined>;
  /** Sent with every subscribe command (the subscribe hook reads it). */
  data?: unknown;
}

export interface HistoryOptions {
  limit?: number;
  since?: StreamPosition;
  /** Newest first; with `limit`, the newest `limit` publications. */
  reverse?: boolean;
}

export interface SubscriptionEvents extends Record<string, unknown> {
  publication: Publication;
  join: JoinLeaveEvent;
  leave: JoinLeaveEvent;
  subscribing: CloseEvent;
  subscribed: SubscribedEvent;
  unsubscribed: CloseEvent;
  error: ErrorEvent;
}

/** Replies to a subscribe that are worth another try later. */
const TRANSIENT = new Set([408, 429, 500, 503]);
const UNRECOVERABLE_POSITION = 410;

/**
 * A channel subscription that survives reconnects.
 *
 * `epoch` and `offset` are the position of the last publication delivered; after a
 * reconnect the subscription is renewed from there, so that every publication reaches
 * the application once, in offset order, or `subscribed` says `recovered: false`.
 */
export class Subscription extends Emitter<SubscriptionEvents> {
  state: SubscriptionState = "unsubscribed";
  epoch?: string;
  offset?: number;
  private buffer: Publication[] | null = null; // pushes that came while a subscribe was in flight
  private forgetPosition = false;
  private attempt = 0;
  private retryTimer?: ReturnType<typeof setTimeout>;
  private refreshTimer?: ReturnType<typeof setTimeout>;
  private token?: string;

  constructor(
    readonly client: Client,
    readonly channel: string,
    private readonly options: SubscriptionOptions = {},
  ) {
    super();
    if (options.since) ({ epoch: this.epoch, offset: this.offset } = options.since);
  }

  get position(): StreamPosition | undefined {
    return this.epoch === undefined || this.offset === undefined
      ? undefined
      : { epoch: this.epoch, offset: this.offset };
  }

  /** Subscribe now, or as soon as the client is connected; renewed on every reconnect. */
  subscribe(): void {
    if (this.state !== "unsubscribed") return;
    this.state = "subscribing";
    this.emit("subscribing", { code: 0, reason: "subscribe called" });
    if (this.client.state === "connected") this._send();
  }

  unsubscribe(): void {
    if (this.state === "unsubscribed") return;
    const wasSubscribed = this.state === "subscribed";
    this.end({ code: 0, reason: "unsubscribe called" });
    if (wasSubscribed && this.client.state === "connected") this.client._unsubscribe(this.channel);
  }

  /** Resolves once subscribed; rejects when the subscription ends first or after `timeout` ms. */
  ready(timeout?: number): Promise<void> {
    if (this.state === "subscribed") return Promise.resolve();
    return new Promise((resolve, reject) => {
      const settle = (error?: Error) => {
        this.off("subscribed", onSubscribed).off("unsubscribed", onUnsubscribed);
        clearTimeout(timer);
        if (error) reject(error);
        else resolve();
      };
      const onSubscribed = () => settle();
      const onUnsubscribed = (event: CloseEvent) =>
        settle(new Disconnected(event.code, event.reason, false));
      const timer =
        timeout === undefined ? undefined : setTimeout(() => settle(new Error("not subscribed in time")), timeout);
      this.on("subscribed", onSubscribed).on("unsubscribed", onUnsubscribed);
    });
  }

  publish(data: unknown): Promise<number> {
    return this.client.publish(this.channel, data);
  }

  presence(): Promise<Record<string, ClientInfo>> {
    return this.client.presence(this.channel);
  }

  presenceStats(): Promise<PresenceStats> {
    return this.client.presenceStats(this.channel);
  }

  history(options: HistoryOptions = {}): Promise<History> {
    return this.client.history(this.channel, options);
  }

  // -- driven by the client ------------------------------------------------------------

  /** @internal Send the subscribe command on the current connection. */
  async _send(): Promise<void> {
    clearTimeout(this.retryTimer);
    const params: Record<string, unknown> = { channel: this.channel };
    const position = this.position;
    if (position && !this.forgetPosition) params.since = position;
    if (this.options.data !== undefined) params.data = this.options.data;
    const { getToken } = this.options;
    const connection = this.client._connection;
    try {
      // Without getToken nothing is awaited: the subscribe goes out right after the connect reply.
      this.token = getToken ? ((await getToken(this.channel)) ?? undefined) : undefined;
      if (this.token !== undefined) params.token = this.token;
    } catch (error) {
      this.emit("error", { type: "subscribeToken", error: error as Error });
      this.retryLater();
      return;
    }
    if (this.state !== "subscribing" || connection !== this.client._connection) return;
    this.buffer = [];
    this.client._request("subscribe", params).then(
      (result) => this.subscribed(result, "since" in params),
      (error) => this.failed(error, connection),
    );
  }

  /** @internal A publication pushed on the connection. */
  _receive(pub: Publication): void {
    if (this.buffer) this.buffer.push(pub);
    else if (this.state === "subscribed") this.deliver(pub);
  }

  /** @internal A join or leave push. */
  _presenceEvent(kind: "join" | "leave", event: JoinLeaveEvent): void {
    if (this.state === "subscribed") this.emit(kind, event);
  }

  /**
   * @internal The hub ended this subscription, the connection stays: codes 2500-2999 ask to
   * subscribe again from the position (`subscribed` then tells whether it was recovered).
   */
  _unsubscribedByHub(event: CloseEvent): void {
    if (event.code < 2500 || event.code > 2999) {
      this.end(event);
      return;
    }
    if (this.state !== "subscribed") return; // already subscribing again
    clearTimeout(this.refreshTimer);
    this.state = "subscribing";
    this.emit("subscribing", event);
    this._send();
  }

  /** @internal The connection is gone: subscribe again on the next one. */
  _lost(event: CloseEvent): void {
    this.buffer = null;
    clearTimeout(this.retryTimer);
    clearTimeout(this.refreshTimer);
    if (this.state === "subscribed") {
      this.state = "subscribing";
      this.emit("subscribing", event);
    }
  }

  private subscribed(result: any, sinceSent: boolean): void {
    if (this.state === "unsubscribed") {
      this.client._unsubscribe(this.channel); // unsubscribed while the command was in flight
      return;
    }
    const recovered = result.recovered === true && sinceSent;
    const pending = (result.publications ?? []).map((p: any) => publication(this.channel, p, recovered));
    pending.push(...(this.buffer ?? []));
    pending.sort((a: Publication, b: Publication) => a.offset - b.offset);
    this.buffer = null;
    this.forgetPosition = false;
    this.attempt = 0;
    this.scheduleRefresh();
    this.epoch = result.epoch;
    if (!recovered) this.offset = result.offset; // a new stream or a gap: continue from here
    this.state = "subscribed";
    this.emit("subscribed", {
      channel: this.channel,
      epoch: result.epoch,
      offset: result.offset,
      recovered,
      wasRecovering: sinceSent,
    });
    for (const pub of pending) this.deliver(pub);
    if (this.offset === undefined || result.offset > this.offset) this.offset = result.offset;
  }

  private failed(error: HubError, connection: unknown): void {
    this.buffer = null;
    if (this.state !== "subscribing" || error instanceof Disconnected) return; // the next connection subscribes
    if (error.code === UNRECOVERABLE_POSITION) {
      this.forgetPosition = true;
      if (connection === this.client._connection) this._send();
      return;
    }
    this.emit("error", { type: "subscribe", error });
    if (TRANSIENT.has(error.code)) this.retryLater();
    else this.end({ code: error.code, reason: error.message });
  }

  private scheduleRefresh(): void {
    clearTimeout(this.refreshTimer);
    const exp = this.token === undefined ? undefined : tokenExpiry(this.token);
    if (exp !== undefined) this.refreshTimer = setTimeout(() => this.refreshToken(), refreshDelay(exp));
  }

  /** Before the subscription token expires: a new one through `sub_refresh`. */
  private async refreshToken(): Promise<void> {
    const connection = this.client._connection;
    try {
      const token = await this.options.getToken!(this.channel);
      if (token == null || this.state !== "subscribed" || connection !== this.client._connection) return;
      await this.client._request("sub_refresh", { channel: this.channel, token });
      this.token = token;
      this.scheduleRefresh();
    } catch (error) {
      // Left alone, the token expires and the hub's unsubscribe push (2501) subscribes again.
      if (!(error instanceof Disconnected)) this.emit("error", { type: "subRefresh", error: error as Error });
    }
  }

  private retryLater(): void {
    const { minReconnectDelay, maxReconnectDelay } = this.client.options;
    const delay = backoffDelay(this.attempt++, minReconnectDelay, maxReconnectDelay);
    this.retryTimer = setTimeout(() => {
      if (this.state === "subscribing" && this.client.state === "connected") this._send();
    }, delay);
  }

  private deliver(pub: Publication): void {
    if (this.offset !== undefined && pub.offset <= this.offset) return; // replay and push overlap
    this.offset = pub.offset;
    this.emit("publication", pub);
  }

  private end(event: CloseEvent): void {
    this.state = "unsubscribed";
    this.buffer = null;
    clearTimeout(this.retryTimer);
    clearTimeout(this.refreshTimer);
    this.emit("unsubscribed", event);
  }
}

/** @internal A publication from its wire shape (a `pub` push or an item of a reply). */
export function publication(channel: string, item: any, recovered = false): Publication {
  const pub: Publication = { channel, offset: item.offset, data: receivedData(item), recovered };
  if (item.info?.user !== undefined) pub.user = item.info.user;
  return pub;
}
