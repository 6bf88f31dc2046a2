/**
 * Shrinking: from a failing schedule, a smaller one that still breaks the same invariant.
 *
 * A shrunk schedule is named by the indices of the original steps it keeps. A removed step's
 * time is added to the next kept step, so the kept steps run at the same simulated times as in
 * the original run (timing bugs survive shrinking); steps after the last kept one are dropped.
 */
import type { InvariantId } from './invariants.js';
import type { Scenario, Step } from './scenario.js';
import { runScenario, type RunResult } from './world.js';

/** The scenario made of the original steps at `keep` (sorted, distinct indices). */
export function subScenario(scenario: Scenario, keep: readonly number[]): Scenario {
  const steps: Step[] = [];
  let carried = 0;
  let next = 0;
  for (let i = 0; i < scenario.steps.length && next < keep.length; i++) {
    const step = scenario.steps[i];
    if (!step) continue;
    carried += step.dtMs;
    if (keep[next] === i) {
      steps.push({ dtMs: carried, action: step.action });
      carried = 0;
      next++;
    }
  }
  return { ...scenario, steps };
}

export interface ShrinkResult {
  keep: number[];
  result: RunResult;
  runs: number;
}

export interface ShrinkOptions {
  /** Most scenario runs to spend (default 150). */
  maxRuns?: number;
  /** Runs a candidate schedule (default: `runScenario`). */
  run?: (scenario: Scenario) => Promise<RunResult>;
}

/**
 * Delta debugging over the steps: tries removing chunks (halves, quarters, ... single steps)
 * and keeps every removal after which the run still violates `invariant`.
 */
export async function shrink(scenario: Scenario, failing: RunResult, invariant: InvariantId, options: ShrinkOptions = {}): Promise<ShrinkResult> {
  const maxRuns = options.maxRuns ?? 150;
  const run = options.run ?? ((s: Scenario) => runScenario(s));
  const first = failing.violations.find((v) => v.invariant === invariant);
  // Nothing after the step that broke it matters (unless it broke at convergence, after them all).
  const last = first && first.step >= 0 && first.step < scenario.steps.length ? first.step : scenario.steps.length - 1;
  let keep = Array.from({ length: last + 1 }, (_, i) => i);
  let best = failing;
  let runs = 0;
  const fails = async (candidate: number[]): Promise<RunResult | null> => {
    runs++;
    const result = await run(subScenario(scenario, candidate));
    return result.violations.some((v) => v.invariant === invariant) ? result : null;
  };
  // The cut-off run itself must still fail; if not, keep the full schedule.
  if (keep.length < scenario.steps.length) {
    const cut = await fails(keep);
    if (cut) best = cut;
    else keep = Array.from({ length: scenario.steps.length }, (_, i) => i);
  }
  let chunk = Math.max(1, Math.floor(keep.length / 2));
  for (;;) {
    let removed = false;
    for (let start = 0; start < keep.length && runs < maxRuns; ) {
      const candidate = [...keep.slice(0, start), ...keep.slice(start + chunk)];
      const result = candidate.length > 0 || keep.length > 1 ? await fails(candidate) : null;
      if (result) {
        keep = candidate;
        best = result;
        removed = true;
      } else {
        start += chunk;
      }
    }
    if (runs >= maxRuns) break;
    if (chunk === 1 && !removed) break;
    chunk = Math.max(1, Math.floor(chunk / 2));
  }
  return { keep, result: best, runs };
}
