/**
 * Exponential backoff with jitter, one way for everything that retries: the reconciler's failed
 * handlers, the agent's reconnects, the workload supervisor's restarts and the dashboard's stream
 * reconnects. Pure (no clock, no I/O): the web dashboard imports it too.
 */
export interface BackoffPolicy {
  /** The delay before the first retry, before jitter. */
  initialMs: number;
  /** The longest delay, after jitter. */
  maxMs: number;
  /**
   * Spread of the jitter: the delay is the exponential base times a factor drawn uniformly from
   * [1 - jitter, 1 + jitter] for `around`, or from [1 - jitter, 1] for `below` (never longer
   * than the base, so that the cap is a promise).
   */
  jitter: number;
  mode: 'around' | 'below';
}

/** The delay before retry number `retry` (0 = the first retry). `random` is in [0, 1). */
export function backoffDelayMs(policy: BackoffPolicy, retry: number, random: () => number): number {
  const base = Math.min(policy.maxMs, policy.initialMs * 2 ** Math.min(Math.max(0, retry), 30));
  const factor = 1 - policy.jitter + (policy.mode === 'around' ? 2 : 1) * policy.jitter * random();
  return Math.round(Math.min(policy.maxMs, base * factor));
}
