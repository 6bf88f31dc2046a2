/**
 * Deterministic simulation of Drover's reconciler under random faults.
 *
 *   npm run sim -- --seeds N [--from F] [--steps K] [--jobs J] [--verbose] [--no-shrink] [--no-sizing]
 *   npm run sim -- --seed S [--keep 3,17,40] [--steps K] [--verbose]
 *   npm run sim -- --seeds N --plant leader|surge|silence|budget|brake|protect|schedule|sleep|cooldown   (self-test: must report violations)
 *
 * Runs seeds F..F+N-1 (default 1..100) in J child processes (default: one per CPU), or replays
 * one seed (optionally only the steps a shrink kept). Each seed's run depends only on the seed
 * and the step count, never on the parallelism. Ends with one line,
 * `sim: <N> seeds, <V> violations, <T> s`, and exits 1 when V > 0.
 */
import { fork, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { availableParallelism } from 'node:os';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { DEFAULT_STEPS } from './scenario.js';
import { runSeed, type SeedOutcome } from './run.js';
import { PLANTS, clockText, scratchRoot, type Plant } from './world.js';

interface Options {
  seeds: number;
  from: number;
  seed: number | null;
  steps: number;
  jobs: number;
  verbose: boolean;
  shrink: boolean;
  keep: number[] | null;
  worker: boolean;
  /** Wall-clock limit per seed in a child, in seconds (a livelocked seed is reported, not waited for). */
  seedTimeout: number;
  /** A bug to plant (self-test: the run must then report violations). */
  plant: Plant | null;
  /** Simulate bounds, schedules and tenant sleep (`--no-sizing`: the scenarios seeds had before). */
  sizing: boolean;
}

/** What a child sends back for one seed. */
interface SeedSummary {
  seed: number;
  report: string | null;
  simulatedMs: number;
  convergedAfterMs: number | null;
  boundMs: number;
}

type ToChild = { type: 'run'; seeds: number[] } | { type: 'exit' };
type FromChild = { type: 'start'; seed: number } | { type: 'result'; summary: SeedSummary };

function usage(message: string): never {
  process.stderr.write(`${message}\nusage: npm run sim -- --seeds N [--from F] [--steps K] [--jobs J] [--verbose] [--no-shrink] [--no-sizing]\n       npm run sim -- --seed S [--keep i,j,k] [--steps K] [--verbose] [--no-sizing]\n`);
  process.exit(2);
}

function integer(text: string | undefined, name: string, min: number): number | null {
  if (text === undefined) return null;
  const n = Number(text);
  if (!Number.isInteger(n) || n < min) usage(`--${name} must be an integer >= ${min} (got ${text})`);
  return n;
}

function parseOptions(argv: string[]): Options {
  let parsed;
  try {
    parsed = parseArgs({
      args: argv,
      options: {
        seeds: { type: 'string' },
        from: { type: 'string' },
        seed: { type: 'string' },
        steps: { type: 'string' },
        jobs: { type: 'string' },
        keep: { type: 'string' },
        'seed-timeout': { type: 'string' },
        plant: { type: 'string' },
        verbose: { type: 'boolean', short: 'v', default: false },
        'no-shrink': { type: 'boolean', default: false },
        'no-sizing': { type: 'boolean', default: false },
        worker: { type: 'boolean', default: false },
      },
      strict: true,
      allowPositionals: false,
    });
  } catch (err) {
    usage(err instanceof Error ? err.message : String(err));
  }
  const v = parsed.values;
  const keep = v.keep === undefined ? null : v.keep.split(',').map((x) => integer(x.trim(), 'keep', 0) ?? 0);
  if (keep && v.seed === undefined) usage('--keep needs --seed');
  const plant = v.plant === undefined ? null : (PLANTS.find((p) => p === v.plant) ?? usage(`--plant must be one of ${PLANTS.join(', ')}`));
  return {
    seeds: integer(v.seeds, 'seeds', 1) ?? 100,
    from: integer(v.from, 'from', 0) ?? 1,
    seed: integer(v.seed, 'seed', 0),
    steps: integer(v.steps, 'steps', 1) ?? DEFAULT_STEPS,
    jobs: integer(v.jobs, 'jobs', 1) ?? availableParallelism(),
    verbose: v.verbose,
    shrink: !v['no-shrink'],
    keep: keep ? [...new Set(keep)].sort((a, b) => a - b) : null,
    worker: v.worker,
    seedTimeout: integer(v['seed-timeout'], 'seed-timeout', 1) ?? 300,
    plant,
    sizing: !v['no-sizing'],
  };
}

function summarize(outcome: SeedOutcome): SeedSummary {
  return {
    seed: outcome.seed,
    report: outcome.report,
    simulatedMs: outcome.simulatedMs,
    convergedAfterMs: outcome.convergedAfterMs,
    boundMs: outcome.boundMs,
  };
}

// ---- a child: runs the seeds it is sent ----------------------------------------------------

function workerMain(options: Options): void {
  const send = (message: FromChild): void => {
    process.send?.(message);
  };
  process.on('message', (message: ToChild) => {
    if (message.type === 'exit') process.exit(0);
    void (async () => {
      for (const seed of message.seeds) {
        send({ type: 'start', seed });
        try {
          const outcome = await runSeed(seed, { steps: options.steps, shrink: options.shrink, plant: options.plant, sizing: options.sizing });
          send({ type: 'result', summary: summarize(outcome) });
        } catch (err) {
          const why = err instanceof Error ? (err.stack ?? err.message) : String(err);
          send({ type: 'result', summary: { seed, report: `seed ${seed}: error: the simulator threw: ${why}`, simulatedMs: 0, convergedAfterMs: null, boundMs: 0 } });
        }
      }
    })();
  });
}

// ---- the parent: hands out seeds, collects results -------------------------------------------

interface Child {
  process: ChildProcess;
  /** Seeds sent and not yet reported, in order; the first one runs. */
  pending: number[];
  lastHeard: number;
  /** Killed by the watchdog: its running seed is already reported. */
  timedOut: boolean;
}

async function runMany(options: Options): Promise<SeedSummary[]> {
  const seeds = Array.from({ length: options.seeds }, (_, i) => options.from + i);
  const jobs = Math.max(1, Math.min(options.jobs, seeds.length));
  const chunk = Math.max(1, Math.min(25, Math.ceil(seeds.length / (jobs * 8))));
  const queue = [...seeds];
  const results = new Map<number, SeedSummary>();
  const script = fileURLToPath(import.meta.url);
  // The children's scenarios keep their files under one directory, removed at the end even if a
  // child was killed (a livelock) before it could clean up.
  const scratch = mkdtempSync(join(scratchRoot(), 'drover-sim-run-'));
  const childArgs = ['--worker', '--steps', String(options.steps), ...(options.shrink ? [] : ['--no-shrink']), ...(options.plant ? ['--plant', options.plant] : []), ...(options.sizing ? [] : ['--no-sizing'])];
  let lastProgress = Date.now();

  return new Promise<SeedSummary[]>((resolve) => {
    const children = new Set<Child>();
    const finishIfDone = (): void => {
      if (results.size < seeds.length) return;
      clearInterval(watchdog);
      const cleanup = (): void => rmSync(scratch, { recursive: true, force: true });
      let left = children.size;
      for (const c of children) {
        c.process.once('exit', () => {
          if (--left === 0) cleanup();
        });
        c.process.send({ type: 'exit' } satisfies ToChild);
      }
      if (left === 0) cleanup();
      resolve(seeds.map((s) => results.get(s)).filter((r): r is SeedSummary => r !== undefined));
    };
    const feed = (child: Child): void => {
      if (child.pending.length > 0) return;
      const next = queue.splice(0, chunk);
      if (next.length === 0) return;
      child.pending = next;
      child.lastHeard = Date.now();
      child.process.send({ type: 'run', seeds: next } satisfies ToChild);
    };
    const failSeed = (seed: number, why: string): void => {
      process.stderr.write(`sim: seed ${seed}: error: ${why}\n`);
      results.set(seed, { seed, report: `seed ${seed}: error: ${why}\n  replay: npm run sim -- --seed ${seed}${options.steps === DEFAULT_STEPS ? '' : ` --steps ${options.steps}`} --verbose`, simulatedMs: 0, convergedAfterMs: null, boundMs: 0 });
    };
    const spawn = (): void => {
      const proc = fork(script, childArgs, { stdio: ['ignore', 'inherit', 'inherit', 'ipc'], env: { ...process.env, DROVER_SIM_TMPDIR: scratch } });
      const child: Child = { process: proc, pending: [], lastHeard: Date.now(), timedOut: false };
      children.add(child);
      proc.on('message', (message: FromChild) => {
        child.lastHeard = Date.now();
        if (message.type !== 'result') return;
        const { summary } = message;
        results.set(summary.seed, summary);
        child.pending = child.pending.filter((s) => s !== summary.seed);
        if (summary.report) process.stderr.write(`sim: ${summary.report.split('\n')[0] ?? ''}\n`);
        if (options.verbose || Date.now() - lastProgress > 30_000) {
          lastProgress = Date.now();
          process.stderr.write(`sim: ${results.size}/${seeds.length} seeds done\n`);
        }
        feed(child);
        finishIfDone();
      });
      proc.on('exit', (code, signal) => {
        children.delete(child);
        if (child.pending.length === 0) return;
        const [running, ...rest] = child.pending;
        if (!child.timedOut && running !== undefined && !results.has(running)) failSeed(running, `the run died (${signal ?? `exit ${code ?? '?'}`})`);
        queue.unshift(...(child.timedOut ? child.pending : rest).filter((s) => !results.has(s)));
        child.pending = [];
        if (results.size < seeds.length) {
          spawn();
          for (const c of children) feed(c);
        }
        finishIfDone();
      });
      feed(child);
    };
    const watchdog = setInterval(() => {
      for (const child of children) {
        if (child.pending.length > 0 && Date.now() - child.lastHeard > options.seedTimeout * 1000) {
          const [running] = child.pending;
          if (running !== undefined) failSeed(running, `no result after ${options.seedTimeout} s of wall time (a livelock: the reconciler spins without the clock moving?)`);
          child.pending = child.pending.slice(1);
          child.timedOut = true;
          child.process.kill('SIGKILL');
        }
      }
    }, 1_000);
    for (let i = 0; i < jobs; i++) spawn();
  });
}

async function main(): Promise<void> {
  const options = parseOptions(process.argv.slice(2));
  if (options.worker) {
    workerMain(options);
    return;
  }
  const started = performance.now();
  let summaries: SeedSummary[];
  if (options.seed !== null) {
    const outcome = await runSeed(options.seed, { steps: options.steps, shrink: options.shrink, keep: options.keep, plant: options.plant, sizing: options.sizing });
    if (options.verbose) process.stdout.write(`${outcome.result.trace.join('\n')}\n`);
    summaries = [summarize(outcome)];
  } else {
    summaries = await runMany(options);
  }
  const failed = summaries.filter((s) => s.report !== null);
  for (const s of failed) process.stdout.write(`${s.report ?? ''}\n\n`);
  {
    const converged = summaries.filter((s) => s.convergedAfterMs !== null);
    const worst = converged.reduce<SeedSummary | null>((w, s) => (w === null || (s.convergedAfterMs ?? 0) / s.boundMs > (w.convergedAfterMs ?? 0) / w.boundMs ? s : w), null);
    const hours = summaries.reduce((sum, s) => sum + s.simulatedMs, 0) / 3_600_000;
    process.stdout.write(
      `simulated ${hours.toFixed(1)} h; converged ${converged.length}/${summaries.length}` +
        (worst ? `; slowest convergence ${clockText(worst.convergedAfterMs ?? 0)} of a ${clockText(worst.boundMs)} bound (seed ${worst.seed})` : '') +
        '\n',
    );
  }
  const seconds = (performance.now() - started) / 1000;
  process.stdout.write(`sim: ${summaries.length} seeds, ${failed.length} violations, ${seconds.toFixed(1)} s\n`);
  process.exitCode = failed.length > 0 ? 1 : 0;
}

await main();
