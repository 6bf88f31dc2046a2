/**
 * A token bucket on an injected clock, as EC2 describes its request throttling: a bucket holds
 * at most `burst` tokens, starts full, and gains `refillPerSecond` tokens a second; a request
 * takes one token, and a request that finds the bucket empty is refused without taking any (so
 * a client hammering a throttled action does not push its own recovery further away).
 *
 * Time is read only from `now`, so a test advances it by moving its clock, never by waiting.
 */

export interface BucketSpec {
  /** The bucket's size: how many requests may arrive at once after a quiet period. At least 1. */
  burst: number;
  /** Tokens added per second (fractions allowed; 0 means the bucket never refills). */
  refillPerSecond: number;
}

export class TokenBucket {
  private level: number;
  private at: number;

  constructor(
    readonly spec: BucketSpec,
    private readonly now: () => number,
  ) {
    if (!Number.isFinite(spec.burst) || spec.burst < 1) throw new RangeError(`burst must be at least 1, got ${spec.burst}`);
    if (!Number.isFinite(spec.refillPerSecond) || spec.refillPerSecond < 0) {
      throw new RangeError(`refillPerSecond must be a finite number >= 0, got ${spec.refillPerSecond}`);
    }
    this.level = spec.burst;
    this.at = now();
  }

  /** The tokens available now (fractional while refilling). */
  tokens(): number {
    this.refill();
    return this.level;
  }

  /** Takes one token if a whole one is there; answers whether it did. */
  tryTake(): boolean {
    this.refill();
    if (this.level < 1) return false;
    this.level -= 1;
    return true;
  }

  private refill(): void {
    const t = this.now();
    // A clock that goes backwards (a test resetting it) refills nothing rather than draining.
    if (t > this.at) this.level = Math.min(this.spec.burst, this.level + ((t - this.at) / 1000) * this.spec.refillPerSecond);
    this.at = t;
  }
}
