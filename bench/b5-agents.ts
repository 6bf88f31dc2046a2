/**
 * B5 agents: 10,000 real agent connections (issue 18; `BENCH_B5_AGENTS` to change) to a real
 * Drover server on 127.0.0.1, each reporting every 5 s (Drover's default health interval;
 * `BENCH_B5_INTERVAL_MS` to change, e.g. the earlier run's 2,000 at 1,000 ms). Measured: the
 * server's CPU share, its peak RSS, the p99 of a report's latency from the agent's send to the
 * server's `healthAt` write, and how long the server takes to notice 100 agents killed at once
 * and 100 gone silent (SIGSTOP).
 *
 * Processes (all forked from this one, all killed when it ends, however it ends):
 * - b5-server.ts: the server (`startDroverServer`) on a temp config and data dir, SimProvider,
 *   one group of N instances, health interval as above. Alone in its process, so its CPU is its own.
 * - b5-agent-host.ts × 6: `runAgent` instances, 4 hosts sharing the N − 200 others, one of exactly
 *   100 (the kill test SIGKILLs that whole process) and one of 100 (the silence test SIGSTOPs it).
 *
 * Steps: start the server, wait until the N instances run; start the agents (starts spread
 * over one interval); wait until all have reported, then the warm-up; measure for the window
 * (server CPU, every report's latency); read `drover_agent_connections` from /metrics;
 * kill the 100-agent host and time the server noticing each lost agent (and checking each
 * instance with the provider); then stop the silent host and time the same from missed pongs.
 *
 * File descriptors: the server holds one socket per agent (10,000 + its own files), each host
 * one per agent it runs; `ulimit -n` must allow that (checked before anything starts).
 */
import { execFileSync, fork, spawn as spawnProcess, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { readFileSync, writeFileSync } from 'node:fs';
import { loadavg } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { stringify } from 'yaml';
import { AgentCredentials } from '../src/agent/credentials.js';
import { AGENT_PING_MISSES } from '../src/config/index.js';
import { now, percentile, removeDir, round, sleep, tempDir } from './common.js';
import type { HostCommand, HostStats, Reply, ServerCommand, ServerKill, ServerReady, ServerStatus, ServerWindow } from './b5-ipc.js';

/** Agents connected (default: the issue's 10,000); `BENCH_B5_AGENTS` overrides. */
export const B5_AGENTS = envInt('BENCH_B5_AGENTS', 10_000, 300);
/** The health interval the server sets (default: Drover's default, 5 s); `BENCH_B5_INTERVAL_MS` overrides. */
export const B5_INTERVAL_MS = envInt('BENCH_B5_INTERVAL_MS', 5_000, 100);
/** Agents killed at once (one whole host process). */
export const B5_KILLED = 100;
/** Agents made silent at once (one whole host process, SIGSTOP: sockets stay open, nothing answers). */
export const B5_SILENT = 100;
/** Hosts for the other agents. */
const HOSTS = 4;
const INTERVAL_MS = B5_INTERVAL_MS;
/** After every agent has reported once, before the window opens: at least one interval. */
const WARMUP_MS = Math.max(3_000, INTERVAL_MS);
/** The measurement window (CPU, latencies): at least 10 s and 3 intervals, so every agent reports in it. */
const WINDOW_MS = Math.max(10_000, 3 * INTERVAL_MS);
/**
 * Agents start spread over this long: one interval, or longer so that at most 125 connect per
 * second (a fleet does not boot in one instant; the 2 shared cores also run the agents' side of
 * each handshake). Not part of any figure.
 */
const SPREAD_MS = Math.max(INTERVAL_MS, B5_AGENTS * 8);
/** All agents connected and reporting within this long after they start. */
const CONNECT_TIMEOUT_MS = Math.max(30_000, SPREAD_MS + 3 * INTERVAL_MS + 15_000);
const KILL_TIMEOUT_MS = 10_000;

/** Flip to true once runB5 measures a real server. */
export const B5_READY = true;

export interface B5Result {
  /** Agent connections the server held at the end of the window (`drover_agent_connections`). */
  agents: number | null;
  /** p99 of a health report's latency: the agent's `at` → the server has written `healthAt`, ms. */
  p99Ms: number | null;
  /** Server CPU (user + system) over the window / wall time: a fraction of ONE core. */
  cpuShare: number | null;
  /** SIGKILL of 100 agents' process → the server has noticed all 100 (disconnect → CheckInstance), ms. */
  detectKillMs: number | null;
  status: 'pending' | 'measured';
  note?: string;
  // ---- measured runs only ----
  p50Ms?: number;
  maxMs?: number;
  /** Reports recorded in the window, and per second. */
  reports?: number;
  reportsPerSec?: number;
  windowSeconds?: number;
  /** Distinct instances that reported in the window (must be `agents`). */
  reportersInWindow?: number;
  /** The server's event-loop delay in the window. */
  loopDelayP99Ms?: number;
  loopDelayMaxMs?: number;
  /** The server's RSS at the end of the window, MB. */
  serverRssMb?: number;
  /** The server's peak RSS (getrusage maxRSS) from its start to the end of the window, connecting every agent included, MB. */
  serverPeakRssMb?: number;
  /** Group reconciles in the window and their summed wall time (the server's event loop is busy meanwhile), ms. */
  reconcilesInWindow?: number | null;
  reconcileMsInWindow?: number | null;
  /** The health interval the server set, ms. */
  intervalMs?: number;
  /** Agents the run started (`B5_AGENTS`); `agents` and `reportersInWindow` must equal it. */
  agentsStarted?: number;
  /** The server's CPU in the window split into user and kernel time (the kernel's: sockets, SQLite's writes). */
  cpuUserShare?: number;
  cpuSystemShare?: number;
  /** Garbage collection in the server during the window: summed and longest pause (ms), major collections. */
  gcMs?: number;
  gcMaxMs?: number;
  gcMajor?: number;
  /** The hub's health commits in the window: count, summed and longest duration (ms), those over 20 ms. */
  commits?: { count: number; ms: number; maxMs: number; slow: number };
  /** One `GET /metrics` right after the window (the server plans nothing for it, and counts instances in SQL), ms. */
  metricsScrapeMs?: number;
  /** CPU of all agent host processes together over the window, in cores (context: the machine's load). */
  agentsCpuShare?: number;
  agentProcesses?: number;
  /** Warnings and errors the agents logged during the window (must be 0). */
  agentWarnings?: number;
  killed?: number;
  /** Kill → the first of the 100 noticed, ms. */
  detectKillFirstMs?: number;
  /** Kill → the provider has answered all 100 CheckInstance status calls, ms. */
  checkKillMs?: number;
  /** SIGSTOP of 100 agents' process → the server has noticed all 100 from missed pongs (disconnect → CheckInstance), ms. */
  detectSilentMs?: number;
  detectSilentFirstMs?: number;
  silent?: number;
  /** The hub's ping timeout: (AGENT_PING_MISSES + 1) health intervals, ms; the guide for detectSilentMs is this + 1 s. */
  pingTimeoutMs?: number;
  /** Server start → all agents reporting, s (not a figure). */
  setupSeconds?: number;
  /** The machine's 1-minute load average at the end of the window (the 2 cores are shared). */
  loadAverage?: number;
  /** Share of the window in which some task on the machine waited for a core (/proc/pressure/cpu "some"); null off Linux. */
  cpuPressure?: number | null;
  /** Time the server's main thread was runnable but waited for a core during the window, ms (schedstat); null off Linux. */
  serverRunDelayMs?: number | null;
}

export const B5_PENDING: B5Result = {
  agents: null,
  p99Ms: null,
  cpuShare: null,
  detectKillMs: null,
  status: 'pending',
  note: `runs once the server exists: ${B5_AGENTS} real agent connections (src/server, src/agent)`,
};

const here = dirname(fileURLToPath(import.meta.url));

/** A whole number from the environment (at least `min`), or `fallback` when unset. */
function envInt(name: string, fallback: number, min: number): number {
  const raw = process.env[name];
  if (raw === undefined || raw.trim() === '') return fallback;
  const value = Number(raw);
  if (!Number.isInteger(value) || value < min) throw new Error(`${name} must be a whole number >= ${min}, got "${raw}"`);
  return value;
}

/** A forked process with request/response over IPC. */
class Proc {
  private seq = 0;
  private readonly pending = new Map<number, { resolve: (value: unknown) => void; reject: (err: Error) => void }>();
  private readonly others: Array<(message: unknown) => void> = [];
  private exitInfo: string | null = null;
  readonly exited: Promise<void>;

  constructor(
    readonly name: string,
    readonly child: ChildProcess,
  ) {
    child.on('message', (message: unknown) => {
      const reply = message as Partial<Reply>;
      if (typeof reply.seq === 'number' && typeof reply.ok === 'boolean') {
        const waiter = this.pending.get(reply.seq);
        this.pending.delete(reply.seq);
        if (reply.ok) waiter?.resolve((reply as { value: unknown }).value);
        else waiter?.reject(new Error(`${name}: ${(reply as { error: string }).error}`));
        return;
      }
      for (const listener of this.others) listener(message);
    });
    this.exited = new Promise((resolve) => {
      child.once('exit', (code, signal) => {
        this.exitInfo = signal ? `killed by ${signal}` : `exited with code ${String(code)}`;
        for (const waiter of this.pending.values()) waiter.reject(new Error(`${name} ${this.exitInfo}`));
        this.pending.clear();
        resolve();
      });
    });
  }

  get alive(): boolean {
    return this.exitInfo === null;
  }

  /** Resolves with the first non-reply message that `match` accepts; rejects if the process ends first. */
  waitFor<T>(match: (message: unknown) => message is T, timeoutMs: number): Promise<T> {
    return new Promise<T>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`${this.name}: no answer in ${timeoutMs} ms`)), timeoutMs);
      this.others.push((message) => {
        if (!match(message)) return;
        clearTimeout(timer);
        resolve(message);
      });
      void this.exited.then(() => {
        clearTimeout(timer);
        reject(new Error(`${this.name} ${this.exitInfo ?? 'ended'} before it was ready`));
      });
    });
  }

  call<T>(body: ServerCommand | HostCommand, timeoutMs = 30_000): Promise<T> {
    if (!this.alive) return Promise.reject(new Error(`${this.name} ${this.exitInfo ?? 'ended'}`));
    const seq = ++this.seq;
    return new Promise<T>((resolve, reject) => {
      const timer = setTimeout(() => {
        this.pending.delete(seq);
        reject(new Error(`${this.name}: ${body.cmd} got no answer in ${timeoutMs} ms`));
      }, timeoutMs);
      this.pending.set(seq, {
        resolve: (value) => {
          clearTimeout(timer);
          resolve(value as T);
        },
        reject: (err) => {
          clearTimeout(timer);
          reject(err);
        },
      });
      this.child.send({ seq, body });
    });
  }

  kill(): void {
    if (this.alive) this.child.kill('SIGKILL');
  }
}

/** The shell's `ulimit -n` (soft) and `ulimit -Hn` (hard) for open files; Infinity for "unlimited". */
function fileLimits(): { soft: number; hard: number } {
  const read = (flag: string): number => {
    const out = execFileSync('sh', ['-c', `ulimit ${flag}`], { encoding: 'utf8' }).trim();
    return out === 'unlimited' ? Number.POSITIVE_INFINITY : Number(out);
  };
  return { soft: read('-n'), hard: read('-Hn') };
}

/**
 * Forks `script` with at least `files` open files allowed: when the soft limit is lower, the
 * process starts through `sh -c 'ulimit -n <files>; exec node ...'` (a process cannot raise its
 * own limit from Node), keeping the IPC channel; above the hard limit it cannot start.
 */
function spawn(name: string, script: string, args: string[], execArgv: string[], files: number, env: NodeJS.ProcessEnv = process.env): Proc {
  const limits = fileLimits();
  if (files > limits.hard) throw new Error(`B5: ${name} needs ${files} open files but the hard limit (ulimit -Hn) is ${limits.hard}; raise it (or run fewer agents: BENCH_B5_AGENTS)`);
  const path = join(here, script);
  if (files <= limits.soft) return new Proc(name, fork(path, args, { execArgv, env, stdio: ['ignore', 2, 2, 'ipc'] }));
  const child = spawnProcess('sh', ['-c', `ulimit -n ${files} && exec "$0" "$@"`, process.execPath, ...execArgv, path, ...args], { env, stdio: ['ignore', 2, 2, 'ipc'] });
  return new Proc(name, child);
}

/** Open files a process holding `sockets` connections needs: those, plus Node's, SQLite's and some margin. */
const filesFor = (sockets: number): number => sockets + 1_024;

const isReady = (m: unknown): m is ServerReady => typeof m === 'object' && m !== null && (m as { type?: unknown }).type === 'ready';

function writeConfig(dir: string): string {
  const path = join(dir, 'drover.yaml');
  const config = {
    server: { listen: '127.0.0.1:0', dataDir: join(dir, 'data') },
    // The sim cloud in the server process, without an API rate limit: the kill test then times
    // Drover, not the provider's budget.
    provider: { kind: 'sim', maxCallsPerSecond: 0 },
    shard: {
      id: 'bench',
      healthCheckInterval: `${INTERVAL_MS}ms`,
      missedHealthThreshold: 3,
      startupTimeout: '10m',
      defaultDrainTimeout: '5m',
      resyncInterval: '0s',
      workers: 16,
    },
    templates: { web: { image: 'web:1' } },
    groups: { bench: { agents: { size: B5_AGENTS, template: 'web' } } },
  };
  writeFileSync(path, stringify(config));
  return path;
}

/** Microseconds in which some task waited for a CPU (Linux PSI), null where unavailable. */
function cpuPressureUs(): number | null {
  try {
    const match = /^some .*total=(\d+)/m.exec(readFileSync('/proc/pressure/cpu', 'utf8'));
    return match ? Number(match[1]) : null;
  } catch {
    return null;
  }
}

async function connectionsFromMetrics(url: string): Promise<number> {
  const text = await (await fetch(`${url}/metrics`)).text();
  const match = /^drover_agent_connections(?:\{[^}]*\})? (\d+)/m.exec(text);
  if (!match) throw new Error('B5: drover_agent_connections not found in /metrics');
  return Number(match[1]);
}

export async function runB5(): Promise<B5Result> {
  if (!B5_READY) return B5_PENDING;
  const dir = tempDir();
  const procs: Proc[] = [];
  const killAll = (): void => {
    for (const p of procs) p.kill();
  };
  process.once('exit', killAll);
  // The server inherits the profiling flags (its profile lands beside this process's); the agent
  // hosts do not.
  const serverArgv = process.execArgv.filter((a) => a !== '--expose-gc');
  const hostArgv = serverArgv.filter((a) => !a.startsWith('--cpu-prof'));
  let server: Proc | undefined;
  try {
    const started = now();
    const configPath = writeConfig(dir);
    const secret = randomBytes(32).toString('base64url');
    server = spawn('b5-server', 'b5-server.ts', [configPath, String(B5_AGENTS)], serverArgv, filesFor(B5_AGENTS), { ...process.env, DROVER_AGENT_SECRET: secret });
    procs.push(server);
    const ready = await server.waitFor(isReady, 90_000);
    if (ready.instanceIds.length !== B5_AGENTS) throw new Error(`B5: the server has ${ready.instanceIds.length} instances, expected ${B5_AGENTS}`);
    process.stderr.write(`b5: server at ${ready.url}, ${B5_AGENTS} instances running after ${round((now() - started) / 1000, 1)} s\n`);

    const credentials = new AgentCredentials(secret);
    const withCredential = (ids: string[]): Array<{ instanceId: string; credential: string }> => ids.map((instanceId) => ({ instanceId, credential: credentials.issue(instanceId) }));
    const killIds = ready.instanceIds.slice(0, B5_KILLED);
    const silentIds = ready.instanceIds.slice(B5_KILLED, B5_KILLED + B5_SILENT);
    const restIds = ready.instanceIds.slice(B5_KILLED + B5_SILENT);
    const perHost = Math.ceil(restIds.length / HOSTS);
    const plans: Array<{ name: string; ids: string[] }> = [
      { name: 'b5-agents-kill', ids: killIds },
      { name: 'b5-agents-silent', ids: silentIds },
    ];
    for (let h = 0; h < HOSTS; h++) plans.push({ name: `b5-agents-${h + 1}`, ids: restIds.slice(h * perHost, (h + 1) * perHost) });
    const hosts = plans.map((plan) => {
      const host = spawn(plan.name, 'b5-agent-host.ts', [], hostArgv, filesFor(plan.ids.length));
      procs.push(host);
      return { host, ids: plan.ids };
    });
    const killHost = hosts[0]!.host;
    const silentHost = hosts[1]!.host;
    await Promise.all(hosts.map(({ host, ids }) => host.call({ cmd: 'start', url: ready.url, agents: withCredential(ids), spreadMs: SPREAD_MS, intervalMs: INTERVAL_MS })));

    // Every agent connected and reporting.
    const waitSince = now();
    let progressAt = now();
    for (;;) {
      const status = await server.call<ServerStatus>({ cmd: 'status' });
      if (status.reporters >= B5_AGENTS) break;
      if (now() - progressAt >= 10_000) {
        // Progress while connecting: a host whose loop stalls for seconds times its handshakes out.
        progressAt = now();
        const stats = await Promise.all(hosts.map(({ host }) => host.call<HostStats>({ cmd: 'stats' })));
        process.stderr.write(
          `b5: ${status.reporters} agents reported after ${round((now() - waitSince) / 1000, 0)} s; started ${stats.reduce((n, s) => n + s.agents, 0)}, agent warnings ${stats.reduce((n, s) => n + s.warnings, 0)}, hosts' longest loop stall ${round(Math.max(...stats.map((s) => s.loopDelayMaxMs)), 0)} ms\n`,
        );
      }
      if (now() - waitSince > CONNECT_TIMEOUT_MS) {
        const stats = await Promise.all(hosts.map(({ host }) => host.call<HostStats>({ cmd: 'stats' })));
        const warned = stats.filter((s) => s.warnings > 0);
        throw new Error(
          `B5: only ${status.reporters} of ${B5_AGENTS} agents reported within ${round(CONNECT_TIMEOUT_MS / 1000, 0)} s; agents logged ${warned.reduce((n, s) => n + s.warnings, 0)} warnings${warned[0] ? `, e.g. ${warned[0].lastWarning ?? ''}` : ''}`,
        );
      }
      await sleep(200);
    }
    const setupSeconds = round((now() - started) / 1000, 1);
    process.stderr.write(`b5: all ${B5_AGENTS} agents reporting after ${setupSeconds} s; warming up ${WARMUP_MS / 1000} s, measuring ${WINDOW_MS / 1000} s\n`);
    await sleep(WARMUP_MS);

    // The window.
    const hostStats = (): Promise<HostStats[]> => Promise.all(hosts.map(({ host }) => host.call<HostStats>({ cmd: 'stats' })));
    const hostsBefore = await hostStats();
    const hostsFrom = now();
    const pressureBefore = cpuPressureUs();
    await server.call({ cmd: 'measureStart' });
    await sleep(WINDOW_MS);
    const win = await server.call<ServerWindow>({ cmd: 'measureStop' });
    const pressureAfter = cpuPressureUs();
    const hostsAfter = await hostStats();
    const hostsWallMs = now() - hostsFrom;
    const loadAverage = round(loadavg()[0] ?? 0, 1);
    const agents = await connectionsFromMetrics(ready.url);
    process.stderr.write(`b5: window closed: ${agents} agents connected, ${win.latenciesMs.length} reports from ${win.reporters} agents\n`);

    const cpuUs = (s: HostStats): number => s.userUs + s.systemUs;
    const agentsCpuUs = hostsAfter.reduce((sum, s, i) => sum + cpuUs(s) - cpuUs(hostsBefore[i]!), 0);
    const agentWarnings = hostsAfter.reduce((sum, s, i) => sum + s.warnings - hostsBefore[i]!.warnings, 0);
    if (agentWarnings > 0) {
      const last = hostsAfter.find((s, i) => s.warnings > hostsBefore[i]!.warnings)?.lastWarning;
      process.stderr.write(`b5: agents logged ${agentWarnings} warnings in the window; last: ${last ?? '?'}\n`);
    }

    // The kill test.
    process.stderr.write(`b5: killing the process of ${B5_KILLED} agents\n`);
    const kill = await server.call<ServerKill>({ cmd: 'kill', pid: killHost.child.pid ?? -1, signal: 'SIGKILL', instanceIds: killIds, timeoutMs: KILL_TIMEOUT_MS }, KILL_TIMEOUT_MS + 5_000);
    await killHost.exited;
    if (kill.disconnectMs.length < B5_KILLED) throw new Error(`B5: the server noticed ${kill.disconnectMs.length} of ${B5_KILLED} killed agents within ${KILL_TIMEOUT_MS} ms`);
    if (kill.statusMs.length < B5_KILLED) throw new Error(`B5: ${kill.statusMs.length} of ${B5_KILLED} killed agents' instances were checked within ${KILL_TIMEOUT_MS} ms`);

    // The silence test: the process stops (SIGSTOP); its sockets stay open and the kernel answers
    // for them, so only the hub's pings can tell. Killed for good in `finally`.
    process.stderr.write(`b5: stopping (SIGSTOP) the process of ${B5_SILENT} agents\n`);
    const pingTimeoutMs = (AGENT_PING_MISSES + 1) * INTERVAL_MS;
    const silence = await server.call<ServerKill>({ cmd: 'kill', pid: silentHost.child.pid ?? -1, signal: 'SIGSTOP', instanceIds: silentIds, timeoutMs: pingTimeoutMs + KILL_TIMEOUT_MS }, pingTimeoutMs + KILL_TIMEOUT_MS + 5_000);
    if (silence.disconnectMs.length < B5_SILENT) throw new Error(`B5: the server noticed ${silence.disconnectMs.length} of ${B5_SILENT} silent agents within ${pingTimeoutMs + KILL_TIMEOUT_MS} ms`);

    const lat = win.latenciesMs;
    return {
      agents,
      p99Ms: round(percentile(lat, 99), 1),
      cpuShare: round((win.userUs + win.systemUs) / 1000 / win.wallMs, 3),
      cpuUserShare: round(win.userUs / 1000 / win.wallMs, 3),
      cpuSystemShare: round(win.systemUs / 1000 / win.wallMs, 3),
      gcMs: round(win.gcMs, 1),
      gcMaxMs: round(win.gcMaxMs, 1),
      gcMajor: win.gcMajor,
      commits: { count: win.commits.count, ms: round(win.commits.ms, 1), maxMs: round(win.commits.maxMs, 1), slow: win.commits.slow },
      metricsScrapeMs: round(win.metricsScrapeMs, 1),
      detectKillMs: round(kill.disconnectMs[B5_KILLED - 1]!, 1),
      status: 'measured',
      p50Ms: round(percentile(lat, 50), 1),
      maxMs: round(Math.max(0, ...lat), 1),
      reports: lat.length,
      reportsPerSec: round(lat.length / (win.wallMs / 1000), 0),
      windowSeconds: round(win.wallMs / 1000, 2),
      reportersInWindow: win.reporters,
      loopDelayP99Ms: round(win.loopDelayP99Ms, 1),
      loopDelayMaxMs: round(win.loopDelayMaxMs, 1),
      serverRssMb: round(win.rssMb, 0),
      serverPeakRssMb: round(win.peakRssMb, 0),
      intervalMs: INTERVAL_MS,
      agentsStarted: B5_AGENTS,
      reconcilesInWindow: win.reconciles,
      reconcileMsInWindow: win.reconcileMs === null ? null : round(win.reconcileMs, 0),
      agentsCpuShare: round(agentsCpuUs / 1000 / hostsWallMs, 3),
      agentProcesses: hosts.length,
      agentWarnings,
      killed: B5_KILLED,
      detectKillFirstMs: round(kill.disconnectMs[0]!, 1),
      checkKillMs: round(kill.statusMs[B5_KILLED - 1]!, 1),
      silent: B5_SILENT,
      detectSilentMs: round(silence.disconnectMs[B5_SILENT - 1]!, 1),
      detectSilentFirstMs: round(silence.disconnectMs[0]!, 1),
      pingTimeoutMs,
      setupSeconds,
      loadAverage,
      cpuPressure: pressureBefore !== null && pressureAfter !== null ? round((pressureAfter - pressureBefore) / 1000 / win.wallMs, 2) : null,
      serverRunDelayMs: win.runDelayMs === null ? null : round(win.runDelayMs, 0),
    };
  } finally {
    // The server stops cleanly (so its SQLite file is closed), then every process is killed.
    if (server?.alive) {
      try {
        await server.call({ cmd: 'stop' }, 10_000);
        server.child.disconnect();
        await Promise.race([server.exited, sleep(5_000)]);
      } catch {
        // killed below
      }
    }
    killAll();
    await Promise.race([Promise.all(procs.map((p) => p.exited)), sleep(5_000)]);
    process.off('exit', killAll);
    removeDir(dir);
  }
}
