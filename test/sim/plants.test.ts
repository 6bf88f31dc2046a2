import { describe, expect, it } from 'vitest';
import { runSeed } from '../../sim/run.js';
import type { Plant } from '../../sim/world.js';

/**
 * The simulator's self-test: with a bug planted in its world, it must report the invariant the
 * bug breaks. If a check stopped working, these would pass silently no more.
 */
describe('the simulator catches planted bugs', () => {
  const cases: Array<{ plant: Plant; invariant: string; what: string }> = [
    { plant: 'leader', invariant: '4', what: 'a reconciler that acts while not leader' },
    { plant: 'surge', invariant: '1', what: 'a reconciler that creates past size + maxSurge' },
    { plant: 'silence', invariant: '6', what: 'a fleet that cannot converge (agents silent after the faults stop)' },
  ];
  for (const { plant, invariant, what } of cases) {
    it(`reports invariant ${invariant} for ${what}`, async () => {
      const found: string[] = [];
      for (let seed = 1; seed <= 12 && found.length === 0; seed++) {
        const outcome = await runSeed(seed, { plant, shrink: false, steps: 120 });
        if (outcome.violation) {
          expect(outcome.violation.invariant).toBe(invariant);
          expect(outcome.report).toContain(`seed ${seed}: invariant ${invariant}:`);
          expect(outcome.report).toContain(`replay: npm run sim -- --seed ${seed} --plant ${plant} --steps 120 --verbose`);
          found.push(outcome.report ?? '');
        }
      }
      expect(found).toHaveLength(1);
    });
  }
});
