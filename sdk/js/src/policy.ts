// The two rules that decide when the client reconnects: the close-code
// policy of docs/protocol.md and full-jitter exponential backoff.

/** What to do after a connection ended with a close code. */
export type Verdict = "retry" | "stop" | "auth";

// Close codes after which the client must not reconnect by itself:
// normal (the peer closed on purpose), protocol error, invalid data,
// frame too large, kicked, too many connections for this user.
const STOP = new Set([1000, 1002, 1007, 1009, 4002, 4009]);

/**
 * verdict maps a close code to what the client does next: "stop" for the
 * codes that forbid a reconnect, "auth" for 4001 (reconnect only with a
 * fresh token), "retry" for everything else (1001, 4000, 4004, 4005,
 * 1006, ...).
 */
export function verdict(code: number): Verdict {
  if (code === 4001) return "auth";
  return STOP.has(code) ? "stop" : "retry";
}

/** Backoff bounds in milliseconds. */
export const BASE = 500;
export const MAX = 20000;

/**
 * backoff is the delay before reconnect attempt n (0-based): uniform in
 * [0, min(MAX, BASE·2ⁿ)] ("full jitter"). rnd is Math.random by default.
 */
export function backoff(n: number, rnd: () => number = Math.random): number {
  const cap = Math.min(MAX, BASE * 2 ** Math.min(n, 16));
  return Math.floor(rnd() * cap);
}
