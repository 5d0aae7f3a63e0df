/**
 * Milliseconds to wait before reconnect `attempt` (0 for the first): full jitter.
 *
 * A uniform pick in [0, min(max, min * 2^attempt)] spreads a crowd of clients that
 * lost the same server over the whole window instead of bringing them back in waves.
 */
export function backoffDelay(
  attempt: number,
  min: number,
  max: number,
  random: () => number = Math.random,
): number {
  return random() * Math.min(max, min * 2 ** attempt);
}

/** Close codes 4500-4999 mean "do not come back without a change"; all others may retry. */
export function mayReconnect(code: number): boolean {
  return code < 4500 || code > 4999;
}
