import { expect } from 'vitest';
import { runSeed } from '../../sim/run.js';

/** Runs a seed (no shrinking, to stay fast) and fails with the simulator's report if it breaks an invariant. */
export async function expectSeedHolds(seed: number, steps?: number): Promise<void> {
  const outcome = await runSeed(seed, { shrink: false, ...(steps === undefined ? {} : { steps }) });
  expect(outcome.report, outcome.report ?? '').toBeNull();
  expect(outcome.convergedAfterMs).not.toBeNull();
  expect(outcome.convergedAfterMs!).toBeLessThanOrEqual(outcome.boundMs);
}
