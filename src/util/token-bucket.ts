/**
 * A token bucket: `capacity` tokens, refilled at `perSecond`; each take needs one. Time is given
 * by the caller (milliseconds), so the bucket works on any clock.
 */
export class TokenBucket {
  private tokens: number;
  private lastRefill: number;

  constructor(
    private readonly capacity: number,
    private readonly perSecond: number,
    nowMs: number,
  ) {
    this.tokens = capacity;
    this.lastRefill = nowMs;
  }

  private refill(nowMs: number): void {
    if (nowMs > this.lastRefill) {
      this.tokens = Math.min(this.capacity, this.tokens + ((nowMs - this.lastRefill) * this.perSecond) / 1000);
      this.lastRefill = nowMs;
    }
  }

  /** Takes a token if one is there; false when the bucket is empty. */
  tryTake(nowMs: number): boolean {
    this.refill(nowMs);
    if (this.tokens < 1) return false;
    this.tokens -= 1;
    return true;
  }

  /** True when the bucket is full again (nothing to remember about its user). */
  isFull(nowMs: number): boolean {
    this.refill(nowMs);
    return this.tokens >= this.capacity;
  }
}
