/** Retry delays: 5 s doubling to 2 min, with ±20 % jitter so retries of many items spread out. */
export const BACKOFF_BASE_MS = 5_000;
export const BACKOFF_MAX_MS = 120_000;

/** Delay before retry number `attempt` (1 = first retry). `random` is in [0, 1). */
export function backoffDelay(attempt: number, random: () => number): number {
  const exp = Math.min(BACKOFF_MAX_MS, BACKOFF_BASE_MS * 2 ** Math.max(0, attempt - 1));
  const jitter = 0.8 + 0.4 * random();
  return Math.round(Math.min(BACKOFF_MAX_MS, exp * jitter));
}

/** Pauses between re-polls of an instance whose agent disconnected: about 3, 6, 12, 24, then 30 s. */
export const DISCONNECT_POLL_DELAYS_MS: readonly number[] = [3_000, 6_000, 12_000, 24_000, 30_000, 30_000, 30_000, 30_000];
