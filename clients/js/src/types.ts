/** Where a channel's stream is: the epoch names the stream, the offset counts in it. */
export interface StreamPosition {
  epoch: string;
  offset: number;
}

/** A message published in a channel; `recovered` when replayed after a reconnect. */
export interface Publication {
  channel: string;
  offset: number;
  data: unknown;
  /** The publishing user, when a client published it (not the HTTP API). */
  user?: string;
  recovered: boolean;
}

/** One connection present in a channel (presence replies, join and leave events). */
export interface ClientInfo {
  client: string;
  user: string;
  info?: Record<string, unknown>;
}

/** A private message to this client's user; `from` is the sender, when a client sent it. */
export interface Message {
  from?: string;
  data: unknown;
}

export interface History extends StreamPosition {
  publications: Publication[];
}

export interface PresenceStats {
  numClients: number;
  numUsers: number;
}

export type State = "disconnected" | "connecting" | "connected";
export type SubscriptionState = "unsubscribed" | "subscribing" | "subscribed";

export interface ConnectedEvent {
  client: string;
  user: string;
  /** Seconds of silence after which the hub pings (0: never). */
  ping: number;
}

export interface CloseEvent {
  code: number;
  reason: string;
}

export interface DisconnectedEvent extends CloseEvent {
  reconnect: boolean;
}

export interface ErrorEvent {
  type: string;
  error: Error;
}

export interface SubscribedEvent extends StreamPosition {
  channel: string;
  /** True when a position was sent and the hub replayed everything missed since. */
  recovered: boolean;
  /** True when a position was sent (a resubscribe, or a `since` option). */
  wasRecovering: boolean;
}

export interface JoinLeaveEvent extends ClientInfo {
  channel: string;
}

/** A WebSocket constructor: the browser's, Node 22's global one, or the `ws` package's. */
export type WebSocketConstructor = new (url: string, protocols?: string | string[]) => WebSocket;
