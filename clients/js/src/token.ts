/** The `exp` claim of a JWT in seconds since the epoch, or undefined (no claim, not a JWT). */
export function tokenExpiry(token: string): number | undefined {
  try {
    const payload = token.split(".")[1].replace(/-/g, "+").replace(/_/g, "/");
    const exp = JSON.parse(atob(payload)).exp;
    return typeof exp === "number" ? exp : undefined;
  } catch {
    return undefined;
  }
}

/**
 * Milliseconds from now until a token expiring at `exp` should be replaced: a quarter of
 * its remaining life before it ends, at most a minute before.
 */
export function refreshDelay(exp: number, now = Date.now()): number {
  const left = exp * 1000 - now;
  return Math.max(0, left - Math.min(60_000, left / 4));
}
