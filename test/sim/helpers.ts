import { expect } from 'vitest';
import { runSeed } from '../../sim/run.js';

/**
 * Runs a seed (no shrinking, to stay fast) and fails with the simulator's report if it breaks an
 * invariant. `keep` replays only those steps of its schedule (a shrunk schedule, as `--keep`).
 */
export async function expectSeedHolds(seed: number, keep?: readonly number[], options: { sizing?: boolean } = {}): Promise<void> {
  const outcome = await runSeed(seed, { shrink: false, ...options, ...(keep === undefined ? {} : { keep }) });
  expect(outcome.report, outcome.report ?? '').toBeNull();
  expect(outcome.convergedAfterMs).not.toBeNull();
  expect(outcome.convergedAfterMs!).toBeLessThanOrEqual(outcome.boundMs);
}
