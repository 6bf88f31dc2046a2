import { backoffDelayMs, type BackoffPolicy } from '../util/backoff.js';

/** Retry delays: 5 s doubling to 2 min, with ±20 % jitter so retries of many items spread out. */
export const BACKOFF_BASE_MS = 5_000;
export const BACKOFF_MAX_MS = 120_000;

/** The reconciler's retries: ±20 % jitter, so retries of many items spread out. */
export const RETRY_BACKOFF: BackoffPolicy = { initialMs: BACKOFF_BASE_MS, maxMs: BACKOFF_MAX_MS, jitter: 0.2, mode: 'around' };

/** Delay before retry number `attempt` (1 = first retry). `random` is in [0, 1). */
export function backoffDelay(attempt: number, random: () => number): number {
  return backoffDelayMs(RETRY_BACKOFF, attempt - 1, random);
}

/** Pauses between re-polls of an instance whose agent disconnected: about 3, 6, 12, 24, then 30 s. */
export const DISCONNECT_POLL_DELAYS_MS: readonly number[] = [3_000, 6_000, 12_000, 24_000, 30_000, 30_000, 30_000, 30_000];
