import { describe, expect, it } from 'vitest';
import { generateScenario, type Scenario } from '../../sim/scenario.js';
import { shrink, subScenario } from '../../sim/shrink.js';
import type { RunResult } from '../../sim/world.js';

const scenario = generateScenario(11, { steps: 40 });

/** A fake run that "breaks invariant 3" when the schedule holds both marked steps (by their action objects). */
function runFailingWith(marked: readonly number[]): (s: Scenario) => Promise<RunResult> {
  const actions = marked.map((i) => scenario.steps[i]!.action);
  return async (s) => ({
    seed: s.seed,
    violations: actions.every((a) => s.steps.some((step) => step.action === a)) ? [{ invariant: '3', step: s.steps.length - 1, atMs: 0, message: 'planted' }] : [],
    trace: s.steps.map((_, i) => `#${i}`),
    stepsRun: s.steps.length,
    simulatedMs: s.steps.reduce((sum, step) => sum + step.dtMs, 0),
    convergedAfterMs: null,
    boundMs: 0,
    stats: { creates: 0, drains: 0, deletes: 0, restarts: 0, leaderChanges: 0, providerErrors: 0 },
  });
}

describe('shrinking', () => {
  it('keeps the chosen steps at the simulated times they had in the full schedule', () => {
    const sub = subScenario(scenario, [3, 10]);
    const at = (steps: Scenario['steps'], n: number): number => steps.slice(0, n + 1).reduce((sum, s) => sum + s.dtMs, 0);
    expect(sub.steps.map((s) => s.action)).toEqual([scenario.steps[3]!.action, scenario.steps[10]!.action]);
    expect(at(sub.steps, 0)).toBe(at(scenario.steps, 3));
    expect(at(sub.steps, 1)).toBe(at(scenario.steps, 10));
    expect(sub.fleet).toEqual(scenario.fleet);
  });

  it('shrinks a failing schedule to the steps the failure needs', async () => {
    const run = runFailingWith([5, 31]);
    const failing = await run(scenario);
    const shrunk = await shrink(scenario, failing, '3', { run });
    expect(shrunk.keep).toEqual([5, 31]);
    expect(shrunk.result.violations[0]?.invariant).toBe('3');
  });

  it('stops within its budget of runs', async () => {
    const run = runFailingWith([0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19, 20, 21, 22, 23, 24, 25, 26, 27, 28, 29, 30, 31, 32, 33, 34, 35, 36, 37, 38, 39]);
    const shrunk = await shrink(scenario, await run(scenario), '3', { run, maxRuns: 10 });
    expect(shrunk.runs).toBeLessThanOrEqual(10);
    expect(shrunk.keep).toHaveLength(40);
  });
});
