import { describe, expect, it } from 'vitest';
import { runSeed } from '../../sim/run.js';
import type { Plant } from '../../sim/world.js';

/**
 * The simulator's self-test: with a bug planted in its world, it must report the invariant the
 * bug breaks. If a check stopped working, these would pass silently no more.
 */
describe('the simulator catches planted bugs', () => {
  const cases: Array<{ plant: Plant; invariants: string[]; what: string }> = [
    { plant: 'leader', invariants: ['4'], what: 'a reconciler that acts while not leader' },
    { plant: 'surge', invariants: ['1'], what: 'a reconciler that creates past size + maxSurge' },
    { plant: 'silence', invariants: ['6'], what: 'a fleet that cannot converge (agents silent after the faults stop)' },
    // The reconciler's own checks taken away: it sees no budgets, no maxUnhealthy, no protection.
    { plant: 'budget', invariants: ['7', '11'], what: 'a reconciler that ignores disruption budgets' },
    { plant: 'brake', invariants: ['8'], what: 'a reconciler that ignores the health brake (maxUnhealthy)' },
    { plant: 'protect', invariants: ['9'], what: 'a reconciler that ignores protection' },
    { plant: 'schedule', invariants: ['13'], what: 'a reconciler that ignores schedules' },
    { plant: 'sleep', invariants: ['13'], what: 'a reconciler that ignores a tenant’s sleep' },
    { plant: 'cooldown', invariants: ['14'], what: 'an autoscaler without cooldowns or maxStepDown' },
  ];
  for (const { plant, invariants, what } of cases) {
    it(`reports invariant ${invariants.join(' or ')} for ${what}`, async () => {
      const found: string[] = [];
      for (let seed = 1; seed <= 12 && found.length === 0; seed++) {
        const outcome = await runSeed(seed, { plant, shrink: false, steps: 120 });
        if (outcome.violation) {
          const invariant = outcome.violation.invariant;
          expect(invariants).toContain(invariant);
          expect(outcome.report).toContain(`seed ${seed}: invariant ${invariant}:`);
          expect(outcome.report).toContain(`replay: npm run sim -- --seed ${seed} --plant ${plant} --steps 120 --verbose`);
          found.push(outcome.report ?? '');
        }
      }
      expect(found).toHaveLength(1);
    });
  }
});
