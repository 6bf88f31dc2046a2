import { describe, expect, it } from 'vitest';
import { backoffDelayMs, type BackoffPolicy } from '../../src/util/backoff.js';

const fixed = (value: number) => (): number => value;

describe('backoffDelayMs', () => {
  it('doubles from the first delay up to the cap', () => {
    const policy: BackoffPolicy = { initialMs: 100, maxMs: 1_000, jitter: 0, mode: 'around' };
    expect([0, 1, 2, 3, 4, 5].map((r) => backoffDelayMs(policy, r, fixed(0.5)))).toEqual([100, 200, 400, 800, 1_000, 1_000]);
  });

  it('spreads around the base by the jitter, and never past the cap', () => {
    const policy: BackoffPolicy = { initialMs: 1_000, maxMs: 1_100, jitter: 0.2, mode: 'around' };
    expect(backoffDelayMs(policy, 0, fixed(0))).toBe(800);
    expect(backoffDelayMs(policy, 0, fixed(0.999999))).toBe(1_100);
    expect(backoffDelayMs(policy, 5, fixed(0.999999))).toBe(1_100);
  });

  it('draws below the base in "below" mode, so the cap is a promise', () => {
    const policy: BackoffPolicy = { initialMs: 250, maxMs: 1_000, jitter: 0.5, mode: 'below' };
    expect(backoffDelayMs(policy, 0, fixed(0))).toBe(125);
    expect(backoffDelayMs(policy, 10, fixed(0.999999))).toBe(1_000);
    for (let k = 0; k < 100; k++) expect(backoffDelayMs(policy, 10, Math.random)).toBeLessThanOrEqual(1_000);
  });

  it('is safe for huge retry numbers', () => {
    expect(backoffDelayMs({ initialMs: 1, maxMs: 60_000, jitter: 0, mode: 'around' }, 10_000, fixed(0))).toBe(60_000);
  });
});
