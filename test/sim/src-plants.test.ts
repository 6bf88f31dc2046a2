/**
 * The disruption checks of the reconciler itself broken in place (a spy on the code that makes
 * them), the simulator unchanged: it must report the invariant the broken check protects.
 * (plants.test.ts plants bugs in the simulator's world instead.)
 */
import { afterEach, describe, expect, it, vi } from 'vitest';
import { BudgetTracker } from '../../src/reconciler/disruption.js';
import { Reconciler } from '../../src/reconciler/index.js';
import type { PlanInput } from '../../src/reconciler/plan.js';
import { runSeed } from '../../sim/run.js';

afterEach(() => {
  vi.restoreAllMocks();
});

async function firstViolation(): Promise<{ seed: number; invariant: string; report: string }> {
  for (let seed = 1; seed <= 20; seed++) {
    const outcome = await runSeed(seed, { shrink: false, steps: 120 });
    if (outcome.violation) return { seed, invariant: outcome.violation.invariant, report: outcome.report ?? '' };
  }
  throw new Error('no violation in 20 seeds');
}

describe('the simulator catches the reconciler’s own disruption checks broken', () => {
  it('reports invariant 7 or 11 when budgets allow everything (BudgetTracker.allows always true)', async () => {
    vi.spyOn(BudgetTracker.prototype, 'allows').mockReturnValue(true);
    const found = await firstViolation();
    expect(['7', '11']).toContain(found.invariant);
    expect(found.report).toMatch(/disrupted under budgets\[\d\]/);
  });

  it('reports invariant 9 when the plan is not told about protections', async () => {
    type Inputs = (instances: unknown) => Pick<PlanInput, 'protectedUntil' | 'rotationHolds' | 'drainRequests'>;
    const proto = Reconciler.prototype as unknown as { operatorInputs: Inputs };
    const original = proto.operatorInputs;
    vi.spyOn(proto, 'operatorInputs').mockImplementation(function (this: unknown, instances: unknown) {
      return { ...original.call(this, instances), protectedUntil: new Map<string, number>() };
    });
    const found = await firstViolation();
    expect(found.invariant).toBe('9');
    expect(found.report).toMatch(/while protected/);
  });
});
