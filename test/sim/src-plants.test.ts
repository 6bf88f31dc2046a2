/**
 * The reconciler broken in place (a spy on the code that makes a decision), the simulator
 * unchanged: it must report the invariant the broken code protects. (plants.test.ts plants bugs
 * in the simulator's world instead.) None of these spies touches code the checker runs: it
 * computes settings, windows and reasons on its own.
 */
import { afterEach, describe, expect, it, vi } from 'vitest';
import * as configModule from '../../src/config/config.js';
import { CronWindow } from '../../src/config/cron.js';
import { BudgetTracker } from '../../src/reconciler/disruption.js';
import { Reconciler } from '../../src/reconciler/index.js';
import type { PlanInput } from '../../src/reconciler/plan.js';
import { runSeed } from '../../sim/run.js';

afterEach(() => {
  vi.restoreAllMocks();
});

/** The first seed (of 1..limit) that breaks an invariant, and which; fails when none does. */
async function firstViolation(limit = 20): Promise<{ seed: number; invariant: string; report: string }> {
  for (let seed = 1; seed <= limit; seed++) {
    const outcome = await runSeed(seed, { shrink: false, steps: 120 });
    if (outcome.violation) return { seed, invariant: outcome.violation.invariant, report: outcome.report ?? '' };

  }
  throw new Error(`no violation in ${limit} seeds`);
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

describe('the simulator catches bugs in the code its checker used to borrow', () => {
  it('reports invariant 7 or 11 when budget windows close at half their length (src/config/cron.ts)', async () => {
    const original = CronWindow.prototype.current;
    vi.spyOn(CronWindow.prototype, 'current').mockImplementation(function (this: CronWindow, now: Date) {
      const open = original.call(this, now);
      const durationMs = Reflect.get(this, 'durationMs') as number;
      if (!open) return null;
      const end = open.start.getTime() + durationMs / 2;
      return now.getTime() < end ? { start: open.start, end: new Date(end) } : null;
    });
    const found = await firstViolation(20);
    expect(['7', '11']).toContain(found.invariant);
    expect(found.report).toMatch(/disrupted under budgets\[\d\].*window/);
  });

  it('reports invariant 1 when the settings give every group one more maxSurge than its config (src/config/config.ts)', async () => {
    const original = configModule.groupSettings;
    vi.spyOn(configModule, 'groupSettings').mockImplementation((config, tenant, group) => {
      const settings = original(config, tenant, group);
      return settings && { ...settings, maxSurge: settings.maxSurge + 1 };
    });
    const found = await firstViolation(10);
    expect(found.invariant).toBe('1');
    expect(found.report).toMatch(/cap size \+ maxSurge/);
  });
});
