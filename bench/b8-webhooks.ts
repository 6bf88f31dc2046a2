/**
 * B8 webhook delivery and B9 the outbox's cost on B1 (issue 17).
 *
 * B8: a burst of 1,000 events written to the outbox (each with its audit entry, in its own
 * transaction, as the reconciler writes them) and delivered by the real `Notifier` over real
 * HTTP to a receiver on loopback in another process (`b8-receiver.ts`). Latency per event: the
 * audit append has returned (the outbox row is committed) → the receiver has the request's body.
 * The burst is written in one go (about half a second of SQLite commits), so every event's
 * latency but the last's includes waiting for the rest of the burst to be written.
 * Floor: the same 1,000 bodies POSTed by a bare node:http loop on a keep-alive agent (the client
 * the notifier uses), as many at a time as the endpoint's `maxConcurrency`, all ready at once (no
 * outbox, no signing, no bookkeeping), to the same receiver.
 *
 * B9: B1 (`runScaleOut`) with and without a configured receiver, alternated (without, outbox
 * only, with, with, outbox only, without) so machine noise hits each alike; the ratio of their
 * means. "Outbox only" writes the outbox rows (the audit router) but delivers nothing: it splits
 * the cost into the write in the audit's transaction and the delivery work in the same process.
 */
import { fork, type ChildProcess } from 'node:child_process';
import { Agent as HttpAgent, request as httpRequest } from 'node:http';
import { dirname, join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { fileURLToPath } from 'node:url';
import { pino } from 'pino';
import { Notifier, auditRouter, type NotificationEndpoint, type NotificationSettings } from '../src/notifications/index.js';
import { SystemClock, openLocalDb, type AuditAction, type LocalDb } from '../src/index.js';
import type { Arrival, ReceiverCommand, ReceiverReady, ReceiverReply } from './b8-receiver.js';
import { runScaleOut, type B1Result } from './b1-scale-out.js';
import { now, percentile, removeDir, round, sleep, tempDir } from './common.js';

export const B8_EVENTS = 1000;
/** The endpoint's `maxConcurrency` default (src/config/schema.ts), and its most. */
export const DEFAULT_CONCURRENCY = 4;
export const MAX_CONCURRENCY = 32;
/** Events delivered before the burst (connections open, code warm); not measured. */
const WARMUP_EVENTS = 40;
/** A lifecycle per instance: 250 instances × 4 events, each instance's in order. */
const LIFECYCLE: readonly AuditAction[] = ['created', 'drain', 'drainAcked', 'deleted'];
const SECRET = 'bench-webhook-secret-0123456789abcdef';

const here = dirname(fileURLToPath(import.meta.url));
const epochMs = (): number => performance.timeOrigin + performance.now();

/** The receiver process, with request/response over IPC. */
class ReceiverProcess {
  private seq = 0;
  private readonly waiting = new Map<number, (reply: ReceiverReply) => void>();

  private constructor(
    private readonly child: ChildProcess,
    readonly url: string,
  ) {
    child.on('message', (m: ReceiverReply) => {
      this.waiting.get(m.seq)?.(m);
      this.waiting.delete(m.seq);
    });
  }

  static async start(): Promise<ReceiverProcess> {
    // The bench's loader flags (tsx) without its profiling or GC flags.
    const execArgv = process.execArgv.filter((a) => a !== '--expose-gc' && !a.startsWith('--cpu-prof'));
    const child = fork(join(here, 'b8-receiver.ts'), [], { execArgv, stdio: ['ignore', 2, 2, 'ipc'] });
    const url = await new Promise<string>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error('the webhook receiver did not start within 30 s')), 30_000);
      child.once('message', (m: ReceiverReady) => {
        clearTimeout(timer);
        resolve(m.url);
      });
      child.once('exit', (code) => reject(new Error(`the webhook receiver exited (${String(code)}) before it listened`)));
    });
    return new ReceiverProcess(child, url);
  }

  private call(cmd: ReceiverCommand['cmd']): Promise<ReceiverReply> {
    const seq = ++this.seq;
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`the webhook receiver did not answer ${cmd}`)), 30_000);
      this.waiting.set(seq, (reply) => {
        clearTimeout(timer);
        resolve(reply);
      });
      this.child.send({ seq, cmd } satisfies ReceiverCommand);
    });
  }

  async count(): Promise<number> {
    const reply = await this.call('count');
    return 'count' in reply ? reply.count : 0;
  }

  async take(): Promise<Arrival[]> {
    const reply = await this.call('take');
    return 'arrivals' in reply ? reply.arrivals : [];
  }

  /** Polls until the receiver holds `n` requests (fails after `timeoutMs`). */
  async waitForCount(n: number, timeoutMs: number): Promise<void> {
    const deadline = now() + timeoutMs;
    for (;;) {
      const got = await this.count();
      if (got >= n) return;
      if (now() > deadline) throw new Error(`the webhook receiver got ${got} of ${n} requests within ${timeoutMs} ms`);
      await sleep(5);
    }
  }

  stop(): void {
    if (this.child.exitCode === null && this.child.signalCode === null) this.child.kill('SIGKILL');
  }
}

function endpointTo(url: string, maxConcurrency: number): NotificationEndpoint {
  return { name: 'bench', url, events: null, tenants: null, secrets: [SECRET], format: 'json', timeoutMs: 10_000, retryForMs: 86_400_000, maxConcurrency };
}

/**
 * Wires webhooks into a store as the server does (src/app/drover-server.ts): the audit router
 * writes outbox rows in each audit entry's transaction; a `Notifier` on the wall clock delivers
 * them, woken by each audit entry. Returns what stops it.
 */
function benchSettings(url: string, maxConcurrency: number): NotificationSettings {
  return { shard: 'bench', endpoints: new Map([['bench', endpointTo(url, maxConcurrency)]]) };
}

export function attachWebhooks(db: LocalDb, clock: SystemClock, url: string, maxConcurrency: number): { notifier: Notifier; stop(): Promise<void> } {
  const settings = benchSettings(url, maxConcurrency);
  db.setOutboxRouter(auditRouter(() => settings));
  const notifier = new Notifier({
    outbox: db.outbox,
    clock,
    logger: pino({ level: 'warn' }, process.stderr),
    settings: () => settings,
    isLeader: () => true,
    userAgent: 'drover/bench',
  });
  const off = db.subscribe((change) => {
    if (change.kind === 'audit') notifier.wake();
  });
  notifier.start();
  return {
    notifier,
    stop: async () => {
      off();
      await notifier.stop();
      db.setOutboxRouter(null);
    },
  };
}

export interface B8Run {
  maxConcurrency: number;
  events: number;
  p50Ms: number;
  p99Ms: number;
  maxMs: number;
  /** Events per second: the whole burst written → the last one received (the delivery phase). */
  perSec: number;
  /** The bare node:http loop, same bodies, same concurrency, all ready at once. */
  rawP50Ms: number;
  rawP99Ms: number;
  rawPerSec: number;
  /** `p99Ms / rawP99Ms` and `perSec / rawPerSec`. */
  p99Ratio: number;
  throughputRatio: number;
  /** Writing the burst: first append → last append returned (ms); part of every event's latency but the last's. */
  writeMs: number;
  /** Requests beyond one per event (must be 0: every answer was 200). */
  duplicates: number;
  /** Events not received (must be 0). */
  missing: number;
  /** An instance's event received before an earlier one of it (must be 0). */
  orderViolations: number;
}

export interface B8Result {
  default: B8Run;
  max: B8Run;
}

/** The bare loop: `bodies` POSTed to `url`, `concurrency` at a time; latency from the start. */
async function rawBurst(receiver: ReceiverProcess, bodies: Array<{ id: string; body: string }>, concurrency: number): Promise<{ p50Ms: number; p99Ms: number; perSec: number }> {
  await receiver.take();
  const started = epochMs();
  let next = 0;
  const worker = async (): Promise<void> => {
    while (next < bodies.length) {
      const item = bodies[next++]!;
      await new Promise<void>((resolve, reject) => {
        const req = httpRequest(receiver.url, { method: 'POST', agent, headers: { 'Content-Type': 'application/json', 'Content-Length': String(Buffer.byteLength(item.body)), 'Drover-Event-Id': item.id } }, (res) => {
          res.resume();
          res.on('end', resolve);
          res.on('error', reject);
        });
        req.on('error', reject);
        req.end(item.body);
      });
    }
  };
  const agent = new HttpAgent({ keepAlive: true, maxSockets: concurrency });
  await Promise.all(Array.from({ length: concurrency }, worker));
  agent.destroy();
  await receiver.waitForCount(bodies.length, 30_000);
  const arrivals = await receiver.take();
  const latencies = arrivals.map((a) => a.at - started);
  const last = Math.max(...arrivals.map((a) => a.at));
  return { p50Ms: round(percentile(latencies, 50), 1), p99Ms: round(percentile(latencies, 99), 1), perSec: round(bodies.length / ((last - started) / 1000), 0) };
}

async function burst(receiver: ReceiverProcess, maxConcurrency: number): Promise<B8Run> {
  const dir = tempDir();
  const db = openLocalDb(join(dir, 'drover.db'));
  const clock = new SystemClock();
  const hooks = attachWebhooks(db, clock, receiver.url, maxConcurrency);
  const keepAlive = setInterval(() => undefined, 1_000);
  try {
    const append = (instanceId: string, action: AuditAction): number => db.appendAudit({ at: clock.now(), tenant: 'bench', group: 'web', instanceId, action, reason: 'bench' }).seq;
    // Warm-up: connections open, code paths compiled.
    for (let i = 0; i < WARMUP_EVENTS; i++) append(`w-${i}`, 'created');
    await receiver.waitForCount(WARMUP_EVENTS, 30_000);
    await receiver.take();

    // The burst: 1,000 events written one after the other in one go (each with its audit entry,
    // in its own transaction), as a mass event leaves them; delivery starts once they are in.
    const written = new Map<string, { at: number; instance: string; seq: number }>();
    const firstAt = epochMs();
    for (let i = 0; i < B8_EVENTS; i++) {
      const instance = `i-${Math.floor(i / LIFECYCLE.length)}`;
      const seq = append(instance, LIFECYCLE[i % LIFECYCLE.length]!);
      written.set(`ev-bench-${seq}`, { at: epochMs(), instance, seq });
    }
    const writtenAt = epochMs();
    const writeMs = writtenAt - firstAt;
    await receiver.waitForCount(B8_EVENTS, 120_000);
    // Anything sent twice would come in now; the outbox must be empty of pending rows.
    while (hooks.notifier.inFlight > 0) await sleep(5);
    const arrivals = await receiver.take();
    const latencies: number[] = [];
    const seen = new Set<string>();
    const lastSeq = new Map<string, number>();
    let orderViolations = 0;
    for (const a of arrivals) {
      const w = written.get(a.eventId);
      if (!w || seen.has(a.eventId)) continue;
      seen.add(a.eventId);
      latencies.push(a.at - w.at);
      if ((lastSeq.get(w.instance) ?? -1) > w.seq) orderViolations++;
      lastSeq.set(w.instance, w.seq);
    }
    const lastArrival = Math.max(...arrivals.map((a) => a.at));
    // The delivery phase alone: the burst is in → the last event received.
    const perSec = B8_EVENTS / ((lastArrival - writtenAt) / 1000);
    const pending = db.outbox.stats().reduce((n, s) => n + s.pending, 0);
    if (pending > 0) throw new Error(`B8: ${pending} events still pending after every one was received`);

    // The floor: the same bodies, by a bare loop.
    const bodies = db.outbox.list({ state: 'delivered', limit: B8_EVENTS }).filter((r) => written.has(r.eventId)).map((r) => ({ id: r.eventId, body: r.payload }));
    const raw = await rawBurst(receiver, bodies, maxConcurrency);
    const p99 = percentile(latencies, 99);
    return {
      maxConcurrency,
      events: seen.size,
      p50Ms: round(percentile(latencies, 50), 1),
      p99Ms: round(p99, 1),
      maxMs: round(Math.max(...latencies), 1),
      perSec: round(perSec, 0),
      rawP50Ms: raw.p50Ms,
      rawP99Ms: raw.p99Ms,
      rawPerSec: raw.perSec,
      p99Ratio: round(p99 / raw.p99Ms, 2),
      throughputRatio: round(perSec / raw.perSec, 2),
      writeMs: round(writeMs, 1),
      duplicates: arrivals.length - seen.size,
      missing: B8_EVENTS - seen.size,
      orderViolations,
    };
  } finally {
    clearInterval(keepAlive);
    await hooks.stop();
    db.close();
    removeDir(dir);
  }
}

export async function runB8(): Promise<B8Result> {
  const receiver = await ReceiverProcess.start();
  try {
    const atDefault = await burst(receiver, DEFAULT_CONCURRENCY);
    const atMax = await burst(receiver, MAX_CONCURRENCY);
    return { default: atDefault, max: atMax };
  } finally {
    receiver.stop();
  }
}

export interface B9Result {
  /** B1's seconds per run, in the order run. */
  withoutSeconds: number[];
  withSeconds: number[];
  outboxOnlySeconds: number[];
  withoutMean: number;
  withMean: number;
  outboxOnlyMean: number;
  /** `withMean / withoutMean` (guide ≤ 1.05). */
  ratio: number;
  /** `outboxOnlyMean / withoutMean`: the outbox rows' write alone. */
  outboxOnlyRatio: number;
  /** B1's event-loop delay p99 per run (ms), without and with a receiver. */
  withoutLoopP99Ms: number[];
  withLoopP99Ms: number[];
  /** Over the runs with a receiver: events received per run (each run's 1,000 instanceCreated and the rest). */
  delivered: number[];
  /** Over the runs with a receiver: event written → received, ms. */
  deliveryP50Ms: number;
  deliveryP99Ms: number;
  /** Creates the provider throttled, over all runs (must be 0). */
  throttled: number;
}

/** One B1 run with webhooks delivered to `receiver` (default concurrency); its figures and the deliveries. */
async function b1WithReceiver(receiver: ReceiverProcess): Promise<{ b1: B1Result; delivered: number; latencies: number[] }> {
  await receiver.take();
  let hooks: ReturnType<typeof attachWebhooks> | undefined;
  const written = new Map<string, number>();
  let delivered = 0;
  const latencies: number[] = [];
  const { b1 } = await runScaleOut({
    probes: 0,
    setup: (env) => {
      hooks = attachWebhooks(env.db, env.clock, receiver.url, DEFAULT_CONCURRENCY);
      env.db.subscribe((change) => {
        if (change.kind === 'audit' && hooks) written.set(`ev-bench-${change.entry.seq}`, epochMs());
      });
    },
    // Before the store closes: every event of the run has reached the receiver.
    teardown: async (env) => {
      const expected = (): number => env.db.outbox.stats().reduce((n, s) => n + s.pending, 0);
      const deadline = now() + 60_000;
      while (expected() > 0 && now() < deadline) await sleep(10);
      await hooks?.stop();
      for (const a of await receiver.take()) {
        const at = written.get(a.eventId);
        if (at === undefined) continue;
        delivered++;
        latencies.push(a.at - at);
      }
    },
  });
  return { b1, delivered, latencies };
}

export async function runB9(): Promise<B9Result> {
  const receiver = await ReceiverProcess.start();
  try {
    const withoutSeconds: number[] = [];
    const withSeconds: number[] = [];
    const outboxOnlySeconds: number[] = [];
    const withoutLoopP99Ms: number[] = [];
    const withLoopP99Ms: number[] = [];
    const delivered: number[] = [];
    const latencies: number[] = [];
    let throttled = 0;
    // A B C C B A: drift in the machine's load hits each side alike.
    for (const variant of ['without', 'outbox', 'with', 'with', 'outbox', 'without'] as const) {
      if (variant === 'with') {
        const run = await b1WithReceiver(receiver);
        withSeconds.push(run.b1.seconds);
        withLoopP99Ms.push(run.b1.loopDelayP99Ms);
        delivered.push(run.delivered);
        latencies.push(...run.latencies);
        throttled += run.b1.throttled;
      } else if (variant === 'outbox') {
        // The router writes the rows; no notifier runs (nothing is delivered).
        const { b1 } = await runScaleOut({ probes: 0, setup: (env) => env.db.setOutboxRouter(auditRouter(() => benchSettings(receiver.url, DEFAULT_CONCURRENCY))) });
        outboxOnlySeconds.push(b1.seconds);
        throttled += b1.throttled;
      } else {
        const { b1 } = await runScaleOut({ probes: 0 });
        withoutSeconds.push(b1.seconds);
        withoutLoopP99Ms.push(b1.loopDelayP99Ms);
        throttled += b1.throttled;
      }
    }
    const mean = (xs: number[]): number => xs.reduce((a, b) => a + b, 0) / xs.length;
    return {
      withoutSeconds,
      withSeconds,
      outboxOnlySeconds,
      withoutMean: round(mean(withoutSeconds), 3),
      withMean: round(mean(withSeconds), 3),
      outboxOnlyMean: round(mean(outboxOnlySeconds), 3),
      ratio: round(mean(withSeconds) / mean(withoutSeconds), 3),
      outboxOnlyRatio: round(mean(outboxOnlySeconds) / mean(withoutSeconds), 3),
      withoutLoopP99Ms,
      withLoopP99Ms,
      delivered,
      deliveryP50Ms: round(percentile(latencies, 50), 1),
      deliveryP99Ms: round(percentile(latencies, 99), 1),
      throttled,
    };
  } finally {
    receiver.stop();
  }
}
