/**
 * B5's server process: a real Drover server (`startDroverServer`: HTTP + WebSocket on 127.0.0.1,
 * SQLite, the reconciler) over the config file given as argv[2], with an in-process SimProvider.
 * The agent secret comes from DROVER_AGENT_SECRET (so the coordinator can issue credentials).
 *
 * Instrumentation, all in this file (the product only offers the `onHealthReport` hook):
 * - each recorded report's latency: now − the agent's own `at` of it (same machine clock);
 * - CPU (process.cpuUsage) and event-loop delay over a window the coordinator opens and closes;
 * - the kill and silence tests: this process sends SIGKILL (or SIGSTOP) to an agent host itself, so the signal and what the
 *   server notices are timed on one monotonic clock. Noticed = the hub enqueues the instance's
 *   CheckInstance (cause disconnect), which it does in the same turn as it drops the connection
 *   (the reconciler's `enqueue` is wrapped to see it); checked = the provider answers the
 *   status call that CheckInstance makes (SimProvider.onCall).
 */
import { readFileSync, writeFileSync } from 'node:fs';
import { Session } from 'node:inspector/promises';
import { join } from 'node:path';
import { constants as perfConstants, monitorEventLoopDelay, performance, PerformanceObserver, type PerformanceEntry } from 'node:perf_hooks';
import { pino } from 'pino';
import { startDroverServer } from '../src/app/drover-server.js';
import { EventType, SimProvider, SystemClock, type ReconcileEvent } from '../src/index.js';
import { serve, type ServerCommand, type ServerKill, type ServerReady, type ServerStatus, type ServerWindow } from './b5-ipc.js';

const configPath = process.argv[2];
const expected = Number(process.argv[3]);
if (!configPath || !Number.isInteger(expected) || expected <= 0) throw new Error('usage: b5-server.ts <config> <instances>');

// The coordinator gone (crash, kill) means this process must go too.
process.on('disconnect', () => process.exit(0));

const wallNow = (): number => performance.timeOrigin + performance.now();

const reporters = new Set<string>();
let reports = 0;
let window: { latencies: number[]; reporters: Set<string> } | null = null;

const clock = new SystemClock();
const provider = new SimProvider({ clock, seed: 5 });
const server = await startDroverServer({
  configPath,
  logger: pino({ level: 'warn' }, pino.destination(2)),
  clock,
  provider,
  hooks: {
    onHealthReport: (instanceId, sentAt) => {
      const recordedAt = wallNow();
      reports++;
      reporters.add(instanceId);
      if (!window || sentAt === undefined) return;
      window.latencies.push(recordedAt - Date.parse(sentAt));
      window.reporters.add(instanceId);
    },
  },
});

// Kill test observation.
interface Watch {
  startedAt: number;
  ids: Set<string>;
  byProviderId: Map<string, string>;
  disconnects: Map<string, number>;
  statuses: Map<string, number>;
  done: () => void;
}
let watch: Watch | null = null;
const watchDone = (w: Watch): boolean => w.disconnects.size >= w.ids.size && w.statuses.size >= w.ids.size;

const reconciler = server.reconciler;
const enqueue = reconciler.enqueue.bind(reconciler);
reconciler.enqueue = (event: ReconcileEvent): void => {
  const w = watch;
  if (w && event.type === EventType.CheckInstance && event.cause === 'disconnect' && event.instanceId && w.ids.has(event.instanceId) && !w.disconnects.has(event.instanceId)) {
    w.disconnects.set(event.instanceId, performance.now() - w.startedAt);
    if (watchDone(w)) w.done();
  }
  enqueue(event);
};
provider.onCall((call) => {
  const w = watch;
  if (!w || call.op !== 'status' || !call.providerId) return;
  const id = w.byProviderId.get(call.providerId);
  if (id === undefined || w.statuses.has(id)) return;
  w.statuses.set(id, performance.now() - w.startedAt);
  if (watchDone(w)) w.done();
});

// Ready once every instance of the group exists at the provider.
const readySince = performance.now();
for (;;) {
  await reconciler.idle();
  const live = server.db.listInstances().filter((r) => r.providerId && r.status === 'running');
  if (live.length >= expected) {
    const ready: ServerReady = { type: 'ready', url: server.url, instanceIds: live.map((r) => r.id) };
    process.send?.(ready);
    break;
  }
  if (performance.now() - readySince > 60_000) throw new Error(`b5-server: only ${live.length} of ${expected} instances running after 60 s`);
  await new Promise((resolve) => setTimeout(resolve, 50));
}

/** Nanoseconds the main thread has waited on a run queue (Linux schedstat), null where unavailable. */
function runDelayNs(): number | null {
  try {
    const value = Number(readFileSync('/proc/self/schedstat', 'utf8').split(' ')[1]);
    return Number.isFinite(value) ? value : null;
  } catch {
    return null;
  }
}

/**
 * With `--profile` (this process then runs with `--cpu-prof-dir`), the window alone is also
 * profiled (the inspector's profiler, started and stopped with the window) and written beside the
 * whole-life profile as `b5-server-window.cpuprofile`: the steady state, without startup and the
 * agents' connecting.
 */
const profileDir = process.execArgv.find((a) => a.startsWith('--cpu-prof-dir='))?.slice('--cpu-prof-dir='.length);
let profiler: Session | null = null;

/** Group reconciles so far and their summed duration (ms), from the server's own /metrics. */
async function reconciles(): Promise<{ count: number; ms: number } | null> {
  // Not a figure: a scrape that takes longer than 10 s (a starved server) leaves it unknown.
  const text = await fetch(`${server.url}/metrics`, { signal: AbortSignal.timeout(10_000) }).then(
    (r) => r.text(),
    () => null,
  );
  if (text === null) return null;
  const sum = (name: string): number => [...text.matchAll(new RegExp(`^${name}(?:\\{[^}]*\\})? ([0-9.e+-]+)$`, 'gm'))].reduce((n, m) => n + Number(m[1]), 0);
  return { count: sum('drover_reconcile_duration_seconds_count'), ms: sum('drover_reconcile_duration_seconds_sum') * 1000 };
}

/** The hub's group commits during the window: summed and longest (ms), and the slow ones (over 20 ms). */
const commits = { ms: 0, maxMs: 0, slow: 0, count: 0 };
const recordHealthBatch = server.db.recordHealthBatch.bind(server.db);
server.db.recordHealthBatch = (reports) => {
  const started = performance.now();
  try {
    return recordHealthBatch(reports);
  } finally {
    const ms = performance.now() - started;
    if (window) {
      commits.ms += ms;
      commits.count++;
      commits.maxMs = Math.max(commits.maxMs, ms);
      if (ms > 20) commits.slow++;
    }
  }
};

/** GC pauses during the window. */
const gc = { ms: 0, maxMs: 0, major: 0 };
const gcObserver = new PerformanceObserver((list) => {
  if (!window) return;
  for (const entry of list.getEntries() as Array<PerformanceEntry & { detail?: { kind?: number } }>) {
    gc.ms += entry.duration;
    gc.maxMs = Math.max(gc.maxMs, entry.duration);
    if (entry.detail?.kind === perfConstants.NODE_PERFORMANCE_GC_MAJOR) gc.major++;
  }
});
gcObserver.observe({ entryTypes: ['gc'] });

let measured: { wall: number; cpu: NodeJS.CpuUsage; delay: ReturnType<typeof monitorEventLoopDelay>; runDelay: number | null; reconciles: { count: number; ms: number } | null } | null = null;

serve<ServerCommand>(async (body) => {
  switch (body.cmd) {
    case 'status':
      return { reporters: reporters.size, reports } satisfies ServerStatus;
    case 'measureStart': {
      const delay = monitorEventLoopDelay({ resolution: 5 });
      delay.enable();
      const before = await reconciles();
      if (profileDir) {
        profiler = new Session();
        profiler.connect();
        await profiler.post('Profiler.enable');
        await profiler.post('Profiler.start');
      }
      window = { latencies: [], reporters: new Set() };
      Object.assign(gc, { ms: 0, maxMs: 0, major: 0 });
      Object.assign(commits, { ms: 0, maxMs: 0, slow: 0, count: 0 });
      measured = { wall: performance.now(), cpu: process.cpuUsage(), delay, runDelay: runDelayNs(), reconciles: before };
      return null;
    }
    case 'measureStop': {
      if (!measured || !window) throw new Error('measureStop before measureStart');
      const cpu = process.cpuUsage(measured.cpu);
      const runDelay = runDelayNs();
      const wallMs = performance.now() - measured.wall;
      measured.delay.disable();
      // The window ends here: what follows (writing the profile, the /metrics scrape) is not measured.
      const win = window;
      window = null;
      if (profiler && profileDir) {
        const { profile } = await profiler.post('Profiler.stop');
        writeFileSync(join(profileDir, 'b5-server-window.cpuprofile'), JSON.stringify(profile));
        profiler.disconnect();
        profiler = null;
      }
      const scrapeStarted = performance.now();
      const after = await reconciles();
      const metricsScrapeMs = performance.now() - scrapeStarted;
      const result: ServerWindow = {
        wallMs,
        userUs: cpu.user,
        systemUs: cpu.system,
        latenciesMs: win.latencies,
        reporters: win.reporters.size,
        loopDelayP99Ms: measured.delay.percentile(99) / 1e6,
        loopDelayMaxMs: measured.delay.max / 1e6,
        rssMb: process.memoryUsage.rss() / 1024 / 1024,
        peakRssMb: process.resourceUsage().maxRSS / 1024,
        reconciles: after && measured.reconciles ? after.count - measured.reconciles.count : null,
        reconcileMs: after && measured.reconciles ? after.ms - measured.reconciles.ms : null,
        runDelayMs: runDelay !== null && measured.runDelay !== null ? (runDelay - measured.runDelay) / 1e6 : null,
        gcMs: gc.ms,
        gcMaxMs: gc.maxMs,
        gcMajor: gc.major,
        commits: { ...commits },
        metricsScrapeMs,
      };
      measured = null;
      return result;
    }
    case 'kill': {
      const byProviderId = new Map<string, string>();
      for (const id of body.instanceIds) {
        const providerId = server.db.getInstance(id)?.providerId;
        if (providerId) byProviderId.set(providerId, id);
      }
      const finished = new Promise<void>((resolve) => {
        watch = { startedAt: performance.now(), ids: new Set(body.instanceIds), byProviderId, disconnects: new Map(), statuses: new Map(), done: resolve };
        process.kill(body.pid, body.signal);
      });
      let timer: NodeJS.Timeout | undefined;
      await Promise.race([finished, new Promise<void>((resolve) => (timer = setTimeout(resolve, body.timeoutMs)))]);
      clearTimeout(timer);
      const w = watch;
      watch = null;
      if (!w) throw new Error('kill: no watch');
      const sorted = (m: Map<string, number>): number[] => [...m.values()].sort((a, b) => a - b);
      return { disconnectMs: sorted(w.disconnects), statusMs: sorted(w.statuses) } satisfies ServerKill;
    }
    case 'stop':
      // The coordinator disconnects once it has this answer; that ends the process.
      await server.stop();
      return null;
  }
});
