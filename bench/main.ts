/**
 * Drover benchmarks (issue 6). Each scenario runs in its own Node process (clean heap, its own
 * peak RSS, its own CPU profile) against SimProvider on the real clock and real SQLite files.
 *
 *   npm run bench                      table
 *   npm run bench -- --json            one JSON object with every figure
 *   npm run bench -- --only b1,b2      a subset
 *   npm run bench -- --profile         also write a CPU profile per scenario to bench/profiles/
 *
 * See bench/README.md for the scenarios, every field and the figures measured so far.
 */
import { fork } from 'node:child_process';
import { mkdirSync } from 'node:fs';
import { arch, availableParallelism, cpus, platform } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { B5_PENDING, B5_READY } from './b5-agents.js';
import { now, round } from './common.js';
import { B4_MIN_GROUP_COMMIT_RATIO, B5_MAX_CPU_SHARE, B5_MAX_DETECT_KILL_MS, B5_MAX_P99_MS, B5_MAX_RSS_MB, B9_MAX_RATIO, SCENARIOS, b5SilentMet, b1Met, b2Met, b3Met, b4Met, b6Met, b7Met, b8RunMet, exitCode, verdicts, type Results, type ScenarioId } from './targets.js';

type ChildMessage = { ok: true; result: unknown } | { ok: false; error: string };

const self = fileURLToPath(import.meta.url);
const PROFILE_DIR = join(dirname(self), 'profiles');

async function runScenario(id: ScenarioId): Promise<unknown> {
  switch (id) {
    case 'b1':
      return (await import('./b1-scale-out.js')).runB1();
    case 'b2':
      return (await import('./b2-urgent.js')).runB2();
    case 'b3':
      return (await import('./b3-at-rest.js')).runB3('b3', { paged: true });
    case 'b3m':
      return (await import('./b3-at-rest.js')).runB3('b3m');
    case 'b4':
      return (await import('./b4-health-ingest.js')).runB4();
    case 'b5':
      return (await import('./b5-agents.js')).runB5();
    case 'b6':
      return (await import('./b6-ec2-scale-out.js')).runB6();
    case 'b7':
      return (await import('./b7-hetzner-scale-out.js')).runB7();
    case 'b8':
      return (await import('./b8-webhooks.js')).runB8();
    case 'b9':
      return (await import('./b8-webhooks.js')).runB9();
  }
}

/** Child side: run one scenario and send its result to the parent. */
async function child(id: ScenarioId): Promise<void> {
  let message: ChildMessage;
  try {
    message = { ok: true, result: await runScenario(id) };
  } catch (err) {
    message = { ok: false, error: err instanceof Error ? (err.stack ?? err.message) : String(err) };
  }
  await new Promise<void>((resolve) => process.send?.(message, () => resolve()));
  process.exit(0);
}

/** Parent side: one process per scenario, so figures (RSS above all) do not leak between them. */
function inChild(id: ScenarioId, profile: boolean): Promise<unknown> {
  const execArgv = [...process.execArgv, '--expose-gc'];
  if (profile) {
    // One directory per scenario run: the main thread's profile is the largest file in it (tsx's
    // loader thread writes a small one beside it).
    const dir = join(PROFILE_DIR, `${id}-${new Date().toISOString().replace(/[:.]/g, '-')}`);
    mkdirSync(dir, { recursive: true });
    execArgv.push('--cpu-prof', `--cpu-prof-dir=${dir}`);
  }
  return new Promise((resolve, reject) => {
    // The child's stdout goes to our stderr: stdout stays clean for --json.
    const proc = fork(self, ['--child', id], { execArgv, stdio: ['ignore', 2, 2, 'ipc'] });
    const box: { answer: ChildMessage | null } = { answer: null };
    proc.on('message', (m: ChildMessage) => (box.answer = m));
    proc.on('error', reject);
    proc.on('exit', (code) => {
      const got = box.answer;
      if (got?.ok) resolve(got.result);
      else reject(new Error(got ? got.error : `${id}: the benchmark process exited with code ${String(code)} and no result`));
    });
  });
}

function parseArgs(argv: string[]): { json: boolean; only: ScenarioId[]; profile: boolean; child: ScenarioId | null } {
  const out = { json: false, only: [...SCENARIOS] as ScenarioId[], profile: false, child: null as ScenarioId | null };
  const asId = (s: string): ScenarioId => {
    const id = s.trim().toLowerCase();
    if (!(SCENARIOS as readonly string[]).includes(id)) throw new Error(`unknown scenario "${s}" (known: ${SCENARIOS.join(', ')})`);
    return id as ScenarioId;
  };
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i] ?? '';
    if (arg === '--json') out.json = true;
    else if (arg === '--profile') out.profile = true;
    else if (arg === '--only') out.only = (argv[++i] ?? '').split(',').filter((s) => s.trim() !== '').map(asId);
    else if (arg.startsWith('--only=')) out.only = arg.slice(7).split(',').filter((s) => s.trim() !== '').map(asId);
    else if (arg === '--child') out.child = asId(argv[++i] ?? '');
    else throw new Error(`unknown argument "${arg}" (use --json, --only b1,b2, --profile)`);
  }
  return out;
}

// ---- the table -------------------------------------------------------------------------------

const fmt = (n: number, digits = 0): string => n.toLocaleString('en-US', { minimumFractionDigits: digits, maximumFractionDigits: digits });
const yes = (ok: boolean): string => (ok ? 'yes' : 'NO');

function table(results: Results, errors: Map<ScenarioId, string>, machine: Record<string, unknown>): string {
  const rows: string[][] = [['scenario', 'figure', 'limit / baseline', 'ratio', 'target', 'met']];
  const notes: string[] = [];
  const { b1, b2, b3, b3m, b4, b5, b6, b7, b8, b9 } = results;
  if (b1) {
    rows.push(['B1 scale-out 0 → 1000', `${fmt(b1.seconds, 3)} s`, `floor ${fmt(b1.limitSeconds, 3)} s`, fmt(b1.ratio, 3), 'ratio ≤ 1.10, 0 throttled, 0 errors', yes(b1Met(b1))]);
    notes.push(
      `B1: floor = ${b1.floor.debounceMs} ms debounce + (${b1.floor.creates} − burst ${b1.floor.burst}) / ${b1.floor.callsPerSecond}/s + ${b1.floor.createLatencyMs} ms; ${b1.creates} creates, ${b1.throttled} throttled, ${b1.errors} errors, ${fmt(b1.createRate, 1)} creates/s, first create after ${fmt(b1.firstCreateMs, 1)} ms, event-loop delay p99 ${b1.loopDelayP99Ms} ms / max ${b1.loopDelayMaxMs} ms`,
    );
  }
  if (b2) {
    rows.push(['B2 urgent during bulk, p50 / p99 / max', `${fmt(b2.p50Ms, 1)} / ${fmt(b2.p99Ms, 1)} / ${fmt(b2.maxMs, 1)} ms`, `${fmt(b2.limitMs, 0)} ms (2 call slots)`, fmt(b2.ratio, 2), 'p99 ≤ 100 ms, ≥ 200 probes', yes(b2Met(b2))]);
    notes.push(
      `B2: ${b2.probes} probes, p50 ${b2.p50Ms} ms, max ${b2.maxMs} ms, ${b2.missed} missed (status latency ${b2.statusLatencyMs} ms excluded); its bulk run: ${fmt(b2.bulk.seconds, 3)} s for 1000 creates + ${b2.bulk.creates - 1000} replacements, ${b2.bulk.throttled} throttled`,
    );
  }
  for (const r of [b3, b3m]) {
    if (!r) continue;
    const name = r.size === 'b3' ? 'B3' : 'B3-1M';
    const target = r.targetMs !== null ? `≤ ${fmt(r.targetMs)} ms` : `ratio ≤ ${String(r.targetRatio)}`;
    rows.push([`${name} at rest: InitialReconcile`, `${fmt(r.wallMs, 0)} ms`, `raw read warm ${fmt(r.rawReadMs, 0)} ms`, fmt(r.ratio, 2), target, yes(b3Met(r))]);
    rows.push([`${name} at rest: peak RSS of the pass`, `${fmt(r.pass.maxRssMb, 0)} MB`, `at start ${fmt(r.pass.rssBeforeMb, 0)} MB`, '', `≤ ${fmt(r.targetRssMb)} MB`, yes(r.pass.maxRssMb <= r.targetRssMb)]);
    rows.push([`${name} fleet page: first load / median`, `${fmt(r.fleet.firstLoadMs, 0)} / ${fmt(r.fleet.loadMedianMs, 0)} ms`, `${r.fleet.pageGroups} of ${fmt(r.fleet.totalGroups)} groups`, '', `< ${fmt(r.targetFleetMs)} ms`, yes(r.fleet.firstLoadMs < r.targetFleetMs && r.fleet.loadMedianMs < r.targetFleetMs)]);
    if (r.paged) rows.push([`${name} pass, list ${r.paged.pageSize}/page at ${r.paged.pageLatencyMs} ms`, `${fmt(r.paged.wallMs, 0)} ms`, `list ${fmt(r.paged.listMs, 0)} ms (${r.paged.pages} pages)`, '', '', '']);
    notes.push(
      `${name}: ${fmt(r.instances)} instances in ${fmt(r.groups)} groups; raw read median of ${r.rawReadWarmRuns.length}: warm ${fmt(r.rawReadMs, 0)} ms (${r.rawReadWarmRuns.join(', ')}), cold ${fmt(r.rawReadColdMs, 0)} ms (${r.rawReadColdRuns.join(', ')}; ${r.rawCold}); rows streamed and dropped ${fmt(r.rawStreamMs, 0)} ms (pass ${fmt(r.streamRatio, 2)} × that); CPU: pass ${fmt(r.pass.cpuMs)} ms, raw read ${fmt(r.rawReadCpuMs)} ms (${fmt(r.cpuRatio, 2)}×); in the pass: list ${fmt(r.pass.listMs, 0)} ms, per-group reconcile p50 ${r.pass.groupP50Ms} / p99 ${r.pass.groupP99Ms} / max ${r.pass.groupMaxMs} ms (16 at once); a group's plan alone p50 ${r.pass.planP50Ms} / p99 ${r.pass.planP99Ms} ms; ${r.pass.creates} creates, ${r.pass.deletes} deletes, ${r.pass.groupsWithActions} groups with actions; populating ${fmt(r.populate.populateMs)} ms and a first pass ${fmt(r.populate.firstPassMs)} ms (peak RSS ${fmt(r.populate.maxRssMb, 0)} MB, its own process); fleet page requests ${Object.entries(r.fleet.requests).map(([p, ms]) => `${p} ${ms}`).join(', ')} ms, the CLI's GET /v1/groups (1,000 groups) ${fmt(r.fleet.cliGroupsMs, 0)} ms`,
    );
  }
  if (b4) {
    rows.push([
      'B4 health ingest: hub path, group commit',
      `${fmt(b4.reportsPerSec)}/s`,
      `raw UPDATE ${fmt(b4.rawGroupUpdatesPerSec)}/s (${b4.batch}/tx)`,
      fmt(b4.groupCommitRatio, 2),
      `≥ 20,000/s, ratio ≥ ${B4_MIN_GROUP_COMMIT_RATIO}`,
      yes(b4Met(b4)),
    ]);
    notes.push(
      `B4 baselines (same run): recordHealth called directly ${fmt(b4.directReportsPerSec)}/s vs raw autocommit UPDATE ${fmt(b4.rawUpdatesPerSec)}/s (${fmt(b4.ratio, 2)}); recordHealthBatch ${fmt(b4.batchReportsPerSec)}/s vs raw ${fmt(b4.rawBatchUpdatesPerSec)}/s (${fmt(b4.batchRatio, 2)}), ${b4.batch} per transaction`,
    );
  }
  if (b5) {
    if (b5.status === 'pending' || b5.p99Ms === null || b5.cpuShare === null || b5.detectKillMs === null) {
      rows.push(['B5 agents', 'pending', '', '', '', '—']);
    } else {
      const perSec = `${fmt(b5.reportsPerSec ?? 0)} reports/s`;
      const interval = `${fmt((b5.intervalMs ?? 0) / 1000, 0)} s interval`;
      rows.push(['B5 agents: report → recorded, p99', `${fmt(b5.p99Ms, 1)} ms`, `${fmt(b5.agents ?? 0)} of ${fmt(b5.agentsStarted ?? 0)} agents, ${interval}, ${perSec}`, '', `≤ ${B5_MAX_P99_MS} ms`, yes(b5.p99Ms <= B5_MAX_P99_MS)]);
      rows.push(['B5 agents: server CPU', `${fmt(b5.cpuShare, 3)} core`, `agents' ${fmt(b5.agentsCpuShare ?? 0, 2)} core; server waited ${fmt(b5.serverRunDelayMs ?? 0)} ms for a core`, '', `≤ ${B5_MAX_CPU_SHARE} core`, yes(b5.cpuShare <= B5_MAX_CPU_SHARE)]);
      rows.push(['B5 agents: server peak RSS', `${fmt(b5.serverPeakRssMb ?? 0)} MB`, `${fmt(b5.serverRssMb ?? 0)} MB at the window's end`, '', `≤ ${B5_MAX_RSS_MB} MB`, yes((b5.serverPeakRssMb ?? Infinity) <= B5_MAX_RSS_MB)]);
      rows.push([`B5 ${b5.killed ?? 0} agents killed → noticed`, `${fmt(b5.detectKillMs, 1)} ms`, '', '', `≤ ${fmt(B5_MAX_DETECT_KILL_MS)} ms`, yes(b5.detectKillMs <= B5_MAX_DETECT_KILL_MS)]);
      rows.push([
        `B5 ${b5.silent ?? 0} agents silent (SIGSTOP) → noticed`,
        b5.detectSilentMs === undefined ? '?' : `${fmt(b5.detectSilentMs, 1)} ms`,
        `ping timeout ${fmt(b5.pingTimeoutMs ?? 0)} ms`,
        '',
        `≤ ping timeout + 1 s`,
        yes(b5SilentMet(b5)),
      ]);
      notes.push(
        `B5: ${fmt(b5.agents ?? 0)} connections (${b5.agentProcesses ?? 0} agent processes), ${fmt(b5.reports ?? 0)} reports in ${fmt(b5.windowSeconds ?? 0, 1)} s from ${fmt(b5.reportersInWindow ?? 0)} agents; latency p50 ${b5.p50Ms ?? '?'} ms / max ${b5.maxMs ?? '?'} ms; server loop delay p99 ${b5.loopDelayP99Ms ?? '?'} ms / max ${b5.loopDelayMaxMs ?? '?'} ms; ${b5.reconcilesInWindow ?? '?'} group reconciles in the window (${b5.reconcileMsInWindow ?? '?'} ms); kill: first noticed ${b5.detectKillFirstMs ?? '?'} ms, all ${b5.killed ?? 0} checked with the provider ${b5.checkKillMs ?? '?'} ms; silent: first noticed ${b5.detectSilentFirstMs ?? '?'} ms; ${b5.agentWarnings ?? 0} agent warnings; machine: load average ${b5.loadAverage ?? '?'}, some task waiting for a core ${b5.cpuPressure === null || b5.cpuPressure === undefined ? '?' : `${Math.round(b5.cpuPressure * 100)}%`} of the window, the server waiting ${b5.serverRunDelayMs ?? '?'} ms of it`,
      );
    }
    if (b5.note) notes.push(`B5: ${b5.note}`);
  }
  if (b6) {
    const met = b6Met(b6);
    rows.push(['B6 EC2 scale-out 0 → 1000', `${fmt(b6.seconds, 2)} s`, `bucket floor ${fmt(b6.floorSeconds, 0)} s`, fmt(b6.ratio, 3), 'ratio ≤ 1.10, 0 dup, < 5 % throttled', yes(met)]);
    notes.push(
      `B6: ${b6.instances} instances, ${b6.duplicates} duplicates; ${b6.calls} EC2 calls (${b6.runInstancesCalls} RunInstances), ${b6.throttled} throttled (${fmt(b6.throttledShare * 100, 2)} %); event-loop delay p99 ${b6.loopDelayP99Ms} ms; ${b6.errors} reconcile errors`,
    );
  }
  if (b7) {
    const met = b7Met(b7);
    rows.push(['B7 Hetzner scale-out 0 → 200', `${fmt(b7.seconds, 2)} s`, `budget floor ${fmt(b7.floorSeconds, 1)} s`, fmt(b7.ratio, 3), 'ratio ≤ 1.10, 0 dup, 0 × 429', yes(met)]);
    notes.push(
      `B7: ${b7.servers} servers (${Object.entries(b7.perLocation).map(([l, n]) => `${l} ${n}`).join(', ')}), ${b7.duplicates} duplicates; ${b7.requests} requests (${b7.creates} creates), ${b7.rateLimited} answered 429; event-loop delay p99 ${b7.loopDelayP99Ms} ms; ${b7.errors} reconcile errors`,
    );
  }
  if (b8) {
    for (const run of [b8.default, b8.max]) {
      const ok = b8RunMet(run);
      rows.push([
        `B8 webhooks: burst of ${fmt(run.events)}, p50 / p99 (${run.maxConcurrency} at once)`,
        `${fmt(run.p50Ms, 1)} / ${fmt(run.p99Ms, 1)} ms`,
        `bare node:http ${fmt(run.rawP50Ms, 1)} / ${fmt(run.rawP99Ms, 1)} ms`,
        fmt(run.p99Ratio, 2),
        'all, once, in order',
        yes(ok),
      ]);
      rows.push([`B8 webhooks: throughput (${run.maxConcurrency} at once)`, `${fmt(run.perSec)}/s`, `bare node:http ${fmt(run.rawPerSec)}/s`, fmt(run.throughputRatio, 2), '', '']);
      notes.push(
        `B8 (${run.maxConcurrency} at once): ${run.events} events received, ${run.missing} missing, ${run.duplicates} duplicates, ${run.orderViolations} out of order; max ${run.maxMs} ms; writing the burst took ${run.writeMs} ms`,
      );
    }
  }
  if (b9) {
    rows.push(['B9 B1 with a webhook receiver', `${fmt(b9.withMean, 3)} s`, `without ${fmt(b9.withoutMean, 3)} s`, fmt(b9.ratio, 3), `≤ ${B9_MAX_RATIO}`, yes(b9.ratio <= B9_MAX_RATIO && b9.throttled === 0)]);
    rows.push(['B9 B1 with outbox rows, no delivery', `${fmt(b9.outboxOnlyMean, 3)} s`, `without ${fmt(b9.withoutMean, 3)} s`, fmt(b9.outboxOnlyRatio, 3), `≤ ${B9_MAX_RATIO}`, yes(b9.outboxOnlyRatio <= B9_MAX_RATIO && b9.throttled === 0)]);
    notes.push(
      `B9: runs without ${b9.withoutSeconds.join(', ')} s, outbox only ${b9.outboxOnlySeconds.join(', ')} s, with ${b9.withSeconds.join(', ')} s; B1 event-loop delay p99 without ${b9.withoutLoopP99Ms.join(', ')} ms, with ${b9.withLoopP99Ms.join(', ')} ms; events received per run with a receiver ${b9.delivered.join(', ')}; written → received p50 ${b9.deliveryP50Ms} ms / p99 ${b9.deliveryP99Ms} ms; ${b9.throttled} throttled`,
    );
  }
  for (const [id, error] of errors) {
    rows.push([id.toUpperCase(), 'FAILED', '', '', '', 'NO']);
    notes.push(`${id.toUpperCase()} failed: ${error}`);
  }
  const widths = rows[0]!.map((_, c) => Math.max(...rows.map((r) => (r[c] ?? '').length)));
  const line = (r: string[]): string => r.map((cell, c) => (c === 0 ? cell.padEnd(widths[c]!) : cell.padStart(widths[c]!))).join('  ');
  const header = `Drover benchmarks: ${String(machine.cores)} cores (${String(machine.cpu)}), Node ${String(machine.node)}, ${String(machine.platform)}`;
  return [header, '', line(rows[0]!), ...rows.slice(1).map(line), '', ...notes, '', `total ${fmt(Number(machine.totalSeconds), 1)} s`].join('\n');
}

async function main(): Promise<void> {
  let args: ReturnType<typeof parseArgs>;
  try {
    args = parseArgs(process.argv.slice(2));
  } catch (err) {
    process.stderr.write(`bench: ${err instanceof Error ? err.message : String(err)}\n`);
    process.exitCode = 2;
    return;
  }
  if (args.child) return child(args.child);
  const started = now();
  const results: Results = {};
  const errors = new Map<ScenarioId, string>();
  for (const id of SCENARIOS) {
    if (!args.only.includes(id)) continue;
    if (id === 'b5' && !B5_READY) {
      results.b5 = B5_PENDING;
      continue;
    }
    process.stderr.write(`running ${id}...\n`); // progress: stderr, with or without --json
    try {
      const result = await inChild(id, args.profile);
      (results as Record<ScenarioId, unknown>)[id] = result;
    } catch (err) {
      errors.set(id, err instanceof Error ? err.message : String(err));
    }
  }
  const machine = {
    cores: availableParallelism(),
    cpu: cpus()[0]?.model ?? 'unknown',
    node: process.version,
    platform: `${platform()} ${arch()}`,
    totalSeconds: round((now() - started) / 1000, 1),
    ...(args.profile ? { profiles: PROFILE_DIR } : {}),
  };
  const met = verdicts(results);
  const missed = (Object.keys(met) as ScenarioId[]).filter((id) => met[id] === false);
  if (args.json) {
    // Each scenario's object gets its `met` (targets.ts); `missed` lists the scenarios that missed.
    const withMet = Object.fromEntries(Object.entries(results).map(([id, r]) => [id, { ...(r as object), ...(id in met ? { met: met[id as ScenarioId] } : {}) }]));
    const out = { machine, ...withMet, missed, ...(errors.size > 0 ? { errors: Object.fromEntries(errors) } : {}) };
    process.stdout.write(`${JSON.stringify(out, null, 2)}\n`);
  } else {
    process.stdout.write(`${table(results, errors, machine)}\n`);
    if (args.profile) process.stdout.write(`CPU profiles in ${PROFILE_DIR}/<scenario>-<time>/ (summarise: npx tsx bench/profile-top.ts <file>)\n`);
  }
  // Non-zero when a scenario failed to run or missed a target, so a script or CI can gate on it.
  process.exitCode = exitCode(met, [...errors.keys()]);
  if (missed.length > 0) process.stderr.write(`bench: targets missed: ${missed.join(', ')}\n`);
}

await main();
