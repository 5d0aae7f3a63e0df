export { backoffDelay, mayReconnect } from "./backoff.js";
export { Client, type ClientEvents, type ClientOptions } from "./client.js";
export type { Protocol } from "./codec.js";
export { CommandTimeout, Disconnected, HubError } from "./errors.js";
export {
  Subscription,
  type HistoryOptions,
  type SubscriptionEvents,
  type SubscriptionOptions,
} from "./subscription.js";
export type * from "./types.js";
