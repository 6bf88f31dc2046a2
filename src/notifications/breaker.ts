/**
 * A circuit breaker per endpoint, on the injected clock: after `failureThreshold` failures in a
 * row the endpoint is left alone for a cool-off (doubling on each re-open, up to `maxOpenMs`);
 * then one delivery probes it (half-open): a success closes it, a failure opens it again. While
 * open, due events wait without spending their attempts. (cockatiel's breaker reads the wall
 * clock, which the tests cannot move.)
 */
export type BreakerState = 'closed' | 'open' | 'halfOpen';

export interface BreakerOptions {
  failureThreshold: number;
  openMs: number;
  maxOpenMs: number;
}

export const DEFAULT_BREAKER: BreakerOptions = { failureThreshold: 5, openMs: 30_000, maxOpenMs: 5 * 60_000 };

export class CircuitBreaker {
  private failures = 0;
  private opens = 0;
  private openUntil: number | null = null;
  private probing = false;

  constructor(private readonly options: BreakerOptions = DEFAULT_BREAKER) {}

  state(now: number): BreakerState {
    if (this.openUntil === null) return 'closed';
    return now < this.openUntil ? 'open' : 'halfOpen';
  }

  /** When an open breaker lets a probe through (null: not open). */
  reopensAt(): number | null {
    return this.openUntil;
  }

  /** Whether a delivery may start now; a half-open breaker lets one through at a time. */
  tryAcquire(now: number): boolean {
    const state = this.state(now);
    if (state === 'closed') return true;
    if (state === 'open' || this.probing) return false;
    this.probing = true;
    return true;
  }

  succeeded(): void {
    this.failures = 0;
    this.opens = 0;
    this.openUntil = null;
    this.probing = false;
  }

  failed(now: number): void {
    this.failures++;
    const probeFailed = this.probing;
    this.probing = false;
    if (probeFailed || this.failures >= this.options.failureThreshold) {
      this.openUntil = now + Math.min(this.options.maxOpenMs, this.options.openMs * 2 ** Math.min(this.opens, 20));
      this.opens++;
      this.failures = 0;
    }
  }
}
