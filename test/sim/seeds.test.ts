/**
 * A fixed set of seeds, run on every `npm test` (the long run is `npm run sim`). Each runs a
 * random fleet through its schedule of faults, then stops the faults and checks convergence.
 */
import { describe, it } from 'vitest';
import { expectSeedHolds } from './helpers.js';

const SEEDS = Array.from({ length: 60 }, (_, i) => 1 + i);

describe('simulated fault schedules keep every invariant', () => {
  for (const seed of SEEDS) {
    it(`seed ${seed}`, async () => {
      await expectSeedHolds(seed);
    });
  }
});
