/**
 * One seed, start to end: generate its scenario, run it, and on a violation shrink the schedule
 * and write the report (seed, invariant, short trace, replay command).
 */
import { INVARIANT_NAMES, type Violation } from './invariants.js';
import { DEFAULT_STEPS, generateScenario, type Scenario } from './scenario.js';
import { shrink, subScenario } from './shrink.js';
import { SIM_START, clockText, runScenario, type Plant, type RunResult } from './world.js';

export interface SeedOptions {
  steps?: number;
  /** Shrink a failing schedule (default true). */
  shrink?: boolean;
  /** Replay only these steps of the seed's schedule (a shrunk schedule). */
  keep?: readonly number[] | null;
  /** Trace lines to print before a violation (default 25). */
  traceLines?: number;
  /** A bug to plant in the world (the simulator's self-test). */
  plant?: Plant | null;
  /** Simulate bounds, schedules and tenant sleep (default true; see GenerateOptions). */
  sizing?: boolean;
}

export interface SeedOutcome {
  seed: number;
  violation: Violation | null;
  /** The report to print for a violation (null when the seed passed). */
  report: string | null;
  simulatedMs: number;
  convergedAfterMs: number | null;
  boundMs: number;
  result: RunResult;
}

export function scenarioFor(seed: number, options: SeedOptions = {}): Scenario {
  const full = generateScenario(seed, { steps: options.steps ?? DEFAULT_STEPS, ...(options.sizing === false ? { sizing: false } : {}) });
  return options.keep ? subScenario(full, options.keep) : full;
}

function replayCommand(seed: number, steps: number, keep: readonly number[] | null, plant: Plant | null, sizing: boolean): string {
  const parts = ['npm run sim --', `--seed ${seed}`];
  if (plant) parts.push(`--plant ${plant}`);
  if (!sizing) parts.push('--no-sizing');
  if (steps !== DEFAULT_STEPS) parts.push(`--steps ${steps}`);
  if (keep) parts.push(`--keep ${keep.join(',')}`);
  return `${parts.join(' ')} --verbose`;
}

/** The lines of a violation report. */
export function formatReport(seed: number, violation: Violation, trace: readonly string[], extra: string[], traceLines: number, startMs: number = SIM_START): string {
  const lines = [
    `seed ${seed}: ${INVARIANT_NAMES[violation.invariant]}`,
    `  ${violation.step < 0 ? 'at start' : `step ${violation.step}`}, t=${clockText(violation.atMs - startMs)} (${new Date(violation.atMs).toISOString()}): ${violation.message}`,
    ...extra.map((e) => `  ${e}`),
    `  trace (last ${Math.min(traceLines, trace.length)} of ${trace.length} lines):`,
    ...trace.slice(-traceLines).map((l) => `    ${l.length > 600 ? `${l.slice(0, 600)}...` : l}`),
  ];
  return lines.join('\n');
}

export async function runSeed(seed: number, options: SeedOptions = {}): Promise<SeedOutcome> {
  const steps = options.steps ?? DEFAULT_STEPS;
  const scenario = scenarioFor(seed, options);
  const plant = options.plant ?? null;
  const result = await runScenario(scenario, { plant });
  const violation = result.violations[0] ?? null;
  const base = { seed, simulatedMs: result.simulatedMs, convergedAfterMs: result.convergedAfterMs, boundMs: result.boundMs, result };
  if (!violation) return { ...base, violation: null, report: null };
  const traceLines = options.traceLines ?? 25;
  const extra: string[] = [];
  let trace = result.trace;
  let keep: readonly number[] | null = options.keep ?? null;
  if (options.shrink !== false && !options.keep) {
    const shrunk = await shrink(scenario, result, violation.invariant, { run: (s) => runScenario(s, { plant }) });
    if (shrunk.keep.length < scenario.steps.length) {
      keep = shrunk.keep;
      trace = shrunk.result.trace;
      const again = shrunk.result.violations.find((v) => v.invariant === violation.invariant);
      extra.push(`shrunk to ${shrunk.keep.length} of ${scenario.steps.length} steps in ${shrunk.runs} runs${again ? `; there: ${again.message}` : ''}`);
    }
  }
  extra.push(`replay: ${replayCommand(seed, steps, keep, plant, options.sizing !== false)}`);
  return { ...base, violation, report: formatReport(seed, violation, trace, extra, traceLines, scenario.fleet.startMs) };
}
