/**
 * The simulated world a scenario runs in: a ManualClock, a SimProvider, a real SQLite file, a
 * population of simulated agents (health reports, drain acks), a leader flag and a Reconciler
 * that can crash and restart on the same database. It applies a scenario's steps one by one,
 * checks the invariants after each, then stops the faults and checks convergence.
 *
 * Nothing here reads the wall clock or Math.random: the same scenario gives the same trace.
 */
import { accessSync, constants, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ManualClock } from '../src/clock/index.js';
import { ConfigLoader } from '../src/config/index.js';
import { DefaultInstanceManager } from '../src/instances/index.js';
import type { Provider, ProviderCreateRequest, ProviderInstance, ProviderStatus } from '../src/providers/index.js';
import { SimProvider, type SimInstance } from '../src/providers/sim/index.js';
import { EventType, Reconciler, type ReconcileEvent } from '../src/reconciler/index.js';
import type { Logger } from '../src/logging/index.js';
import { LocalOperatorState, keys, type OperatorState } from '../src/state/index.js';
import { openLocalDb, type AuditEntry, type InstanceRecord, type LocalDb } from '../src/store/index.js';
import { seededRandom } from '../src/util/random.js';
import { ConfigModel, loadQuery, type ModelConfig, type RenderOptions } from './config-model.js';
import { asleep } from './sizing.js';
import { Autoscaler } from '../src/autoscale/index.js';
import { UnavailableError } from '../src/errors/index.js';
import { CallLog, Disturbances, Failures, Invariants, OperatorLog, judged, resolveMax, resolveQuantity, type Violation } from './invariants.js';
import { hash32, unit } from './rng.js';
import { ALL_REASONS, HOUR, MIN, SEC, SIM_START, autoscaledGroups, describeAction, tenantsOf, type Action, type BudgetDraw, type FleetSpec, type Scenario, type VoluntaryReasonDraw } from './scenario.js';
import { TAGS, isRotation } from './vocabulary.js';
import { openTime, type WindowSpec } from './windows.js';

export { SIM_START };

/**
 * Bugs the simulator can plant in its own world, to show that its checks catch them:
 * - `leader`: the reconciler is told it is always the leader (invariant 4);
 * - `surge`: the reconciler sees every group's maxSurge 2 higher than the config in force (invariant 1);
 * - `silence`: agents stay silent after the faults stop (invariant 6);
 * - `budget`: the reconciler sees no disruption budgets (invariants 7 and 11);
 * - `brake`: the reconciler sees no maxUnhealthy (invariant 8);
 * - `protect`: the reconciler's operator state loses every protection on reading (invariant 9);
 * - `schedule`: the reconciler sees no schedules (invariant 13);
 * - `sleep`: the reconciler's operator state loses every tenant's sleep on reading (invariant 13);
 * - `cooldown`: the autoscaler sees no cooldowns and no maxStepDown (invariant 14).
 */
export type Plant = 'leader' | 'surge' | 'silence' | 'budget' | 'brake' | 'protect' | 'schedule' | 'sleep' | 'cooldown';
export const PLANTS: readonly Plant[] = ['leader', 'surge', 'silence', 'budget', 'brake', 'protect', 'schedule', 'sleep', 'cooldown'];

/** What the reconciler is shown of the config when a bug is planted (nothing hidden otherwise). */
function plantedRender(plant: Plant | null | undefined): RenderOptions | null {
  switch (plant) {
    case 'surge':
      return { surgeBonus: 2 };
    case 'budget':
      return { withoutBudgets: true };
    case 'brake':
      return { withoutBrake: true };
    case 'schedule':
      return { withoutSchedules: true };
    case 'cooldown':
      return { withoutCooldowns: true };
    default:
      return null;
  }
}

/** Operator state that forgets the entries under `hidden` when read (the `protect` and `sleep` plants). */
class BlindState implements OperatorState {
  constructor(
    private readonly inner: OperatorState,
    private readonly hidden: string,
  ) {}

  get<T>(key: string): T | undefined {
    return key.startsWith(this.hidden) ? undefined : this.inner.get<T>(key);
  }

  list<T>(prefix: string): Array<{ key: string; value: T }> {
    return this.inner.list<T>(prefix).filter((e) => !e.key.startsWith(this.hidden));
  }

  anyIn(namespace: string): boolean {
    // A hidden namespace reads as empty; a narrower hidden prefix is left to get() to hide.
    return namespace.startsWith(this.hidden) ? false : this.inner.anyIn(namespace);
  }

  set(key: string, value: unknown): Promise<void> {
    return this.inner.set(key, value);
  }

  onChange(listener: (key: string) => void): () => void {
    return this.inner.onChange(listener);
  }
}

export interface RunOptions {
  /** Stop at the first violation (default true): the trace then ends where it went wrong. */
  stopAtFirst?: boolean;
  plant?: Plant | null;
}

export interface RunResult {
  seed: number;
  violations: Violation[];
  trace: string[];
  stepsRun: number;
  simulatedMs: number;
  /** Time from the end of the faults to convergence, null when it did not converge. */
  convergedAfterMs: number | null;
  boundMs: number;
  stats: { creates: number; drains: number; deletes: number; restarts: number; leaderChanges: number; providerErrors: number };
}

interface Agent {
  id: string;
  tenant: string;
  group: string;
  providerId: string;
  booted: boolean;
  silentUntil: number;
  /** Frozen (its instance stopped with it) until then: no reports, no acks; null while not frozen. */
  frozenUntil: number | null;
  drains: number;
}

/** After convergence, the world runs this much longer to catch a replacement storm. */
export const STABILITY_WINDOW_MS = 15 * MIN;
/** The longest pause before a retry: README.md, "5 s doubling to 2 min" (the checker's own figure). */
const RETRY_BACKOFF_MAX_MS = 2 * MIN;
/** Longest extra delay of a slow provider call a scenario draws. */
const MAX_SLOW_MS = 90 * SEC;
/** Longest termination-notice window a scenario draws. */
const MAX_NOTICE_MS = 5 * MIN;
const STATUS_TIMEOUT_MS = 5 * SEC;
/** Error logs that mean an exception escaped a handler or a completion. */
const ESCAPED = new Set(['queue handler failed', 'handling a create result failed', 'handling a delete result failed', 'enqueue failed']);

/** "1:02:03" */
export function clockText(ms: number): string {
  const s = Math.floor(ms / 1000);
  return `${Math.floor(s / 3600)}:${String(Math.floor(s / 60) % 60).padStart(2, '0')}:${String(s % 60).padStart(2, '0')}`;
}

const shortId = (id: string): string => id.slice(0, 10);

/**
 * Where scenarios keep their SQLite files: a RAM-backed directory when there is one (the files
 * are real SQLite files in WAL mode either way; tmpfs only makes their fsyncs free).
 */
export function scratchRoot(): string {
  const override = process.env.DROVER_SIM_TMPDIR;
  if (override) return override;
  try {
    accessSync('/dev/shm', constants.W_OK);
    return '/dev/shm';
  } catch {
    return tmpdir();
  }
}

async function turns(n: number): Promise<void> {
  for (let i = 0; i < n; i++) await new Promise<void>((resolve) => setImmediate(resolve));
}

/** What every generation's provider view shares: the mutation check, calls in flight, the call log. */
interface ProviderHooks {
  onMutation(generation: number, op: 'create' | 'delete' | 'setTags', target: string): void;
  /** A create call has been made (and, if the provider made an instance for it, the instance exists). */
  onCreateCalled(req: ProviderCreateRequest): void;
  inFlight: number;
  /** Every call, and which were in trouble (slow, failed, throttled). */
  readonly calls: CallLog;
  now(): number;
  /** The configured latency of an operation. */
  latency(op: string): number;
  /** A list of the whole shard (a provider sync) began; call the result when it ends. */
  shardList(generation: number): (ok: boolean) => void;
}

/** The provider each Reconciler generation sees: the shared cloud, with every mutation checked. */
class WatchedProvider implements Provider {
  readonly kind = 'sim';

  constructor(
    private readonly inner: SimProvider,
    private readonly generation: number,
    private readonly hooks: ProviderHooks,
  ) {}

  private async call<T>(op: string, fn: () => Promise<T>): Promise<T> {
    const id = this.hooks.calls.begin(this.hooks.now(), this.hooks.latency(op));
    let ok = false;
    try {
      this.hooks.inFlight++;
      try {
        const result = await fn();
        ok = true;
        return result;
      } finally {
        this.hooks.inFlight--;
      }
    } finally {
      this.hooks.calls.end(id, this.hooks.now(), ok);
    }
  }

  create(req: ProviderCreateRequest): Promise<ProviderInstance> {
    this.hooks.onMutation(this.generation, 'create', req.idempotencyKey);
    const call = this.call('create', () => this.inner.create(req));
    this.hooks.onCreateCalled(req);
    return call;
  }

  delete(providerId: string): Promise<void> {
    this.hooks.onMutation(this.generation, 'delete', providerId);
    return this.call('delete', () => this.inner.delete(providerId));
  }

  status(providerId: string): Promise<ProviderStatus> {
    this.hooks.calls.checked(this.hooks.now(), providerId);
    return this.call('status', () => this.inner.status(providerId));
  }

  list(tags: Record<string, string>): Promise<ProviderInstance[]> {
    const call = this.call('list', () => this.inner.list(tags));
    const keys = Object.keys(tags);
    if (keys.length !== 1 || keys[0] !== TAGS.shard) return call;
    // A provider sync (the list of the whole shard): the world follows when a win's takes place.
    const ended = this.hooks.shardList(this.generation);
    return call.then(
      (listed) => {
        ended(true);
        return listed;
      },
      (err: unknown) => {
        ended(false);
        throw err;
      },
    );
  }

  setTags(providerId: string, tags: Record<string, string>): Promise<void> {
    this.hooks.onMutation(this.generation, 'setTags', providerId);
    return this.call('setTags', () => this.inner.setTags(providerId, tags));
  }
}

export class World {
  private readonly fleet: FleetSpec;
  private readonly seed: number;
  /** When simulated time starts (the scenario's start). */
  private readonly start: number;
  private readonly clock: ManualClock;
  private readonly dir: string;
  private readonly dbPath: string;
  private db: LocalDb | null = null;
  private unsubscribeDb: (() => void) | null = null;
  readonly sim: SimProvider;
  private readonly model: ConfigModel;
  /** The config in force as the world's model says (what the checker judges by), taken at each apply. */
  private inForce: ModelConfig;
  /** The image each instance runs: its template as the create that made it at the provider asked. */
  private readonly images = new Map<string, string>();
  private readonly loader: ConfigLoader;
  /** The config the reconciler reads: the loader itself, unless a bug is planted in it. */
  private readonly reconcilerLoader: ConfigLoader;
  private readonly planted: RenderOptions | null;
  /** Protections, holds and drain requests the world made (the operator's view). */
  private readonly operatorLog = new OperatorLog();
  /** Provider calls as they happened (which went slow, failed or were throttled). */
  private readonly calls = new CallLog();
  /** The correlated failures (freezes, partitions) the world made, for invariant 12. */
  private readonly failures = new Failures();
  /** The health brake was lifted by the operator during convergence (see converge). */
  private brakeLiftedAt: number | null = null;
  private reconciler: Reconciler | null = null;
  /** The running reconciler's autoscaler (one per generation, as a server has). */
  private autoscaler: Autoscaler | null = null;
  /** What each autoscaled group's query answers (by its query text), and until when it fails. */
  private readonly loads = new Map<string, { value: number; failingUntil: number }>();
  private generation = 0;
  private runningGeneration: number | null = null;
  /** When the running reconciler was started (its health grace begins then). */
  private startedAt: number;
  /** When leadership was last won while it ran (the InitialReconcile then begins a new grace), if it was. */
  private wonAt: number | null = null;
  /** The provider syncs (shard lists) the running reconciler began since that win, and which succeeded. */
  private winLists: Array<{ start: number; ok: boolean }> = [];
  private leader = true;
  private readonly disturbances = new Disturbances();
  private readonly hooks: ProviderHooks;
  readonly checker: Invariants;
  private readonly agents = new Map<string, Agent>();
  private readonly agentSeen = new Set<string>();
  private faultsOn = true;
  private stable = false;
  private stepIndex = -1;
  private observations: string[] = [];
  readonly trace: string[] = [];
  private readonly stats = { creates: 0, drains: 0, deletes: 0, restarts: 0, leaderChanges: 0, providerErrors: 0 };
  private convergedAfterMs: number | null = null;
  private boundMs = 0;
  /** Drain time added by operator extensions: convergence may wait for it. */
  private extendedMs = 0;
  /** The disruption terms of the convergence bound, for the trace. */
  private boundParts = '';

  constructor(
    private readonly scenario: Scenario,
    private readonly options: RunOptions = {},
  ) {
    this.fleet = scenario.fleet;
    this.seed = scenario.seed;
    this.start = this.fleet.startMs;
    this.clock = new ManualClock(new Date(this.start));
    this.startedAt = this.start;
    this.dir = mkdtempSync(join(scratchRoot(), 'drover-sim-'));
    this.dbPath = join(this.dir, 'drover.db');
    this.model = new ConfigModel(this.fleet, () => this.clock.nowMs(), this.start);
    for (const g of autoscaledGroups(this.fleet)) this.loads.set(loadQuery(g.tenant, g.group), { value: g.sizing?.autoscale?.load ?? 0, failingUntil: 0 });
    this.inForce = this.model.inForce();
    this.loader = ConfigLoader.fromObject(this.model.render());
    this.planted = plantedRender(options.plant);
    this.reconcilerLoader = this.planted ? ConfigLoader.fromObject(this.model.render(this.planted)) : this.loader;
    const { provider } = this.fleet;
    this.sim = new SimProvider({
      clock: this.clock,
      seed: this.seed,
      createLatencyMs: provider.createLatencyMs,
      deleteLatencyMs: provider.deleteLatencyMs,
      // The cloud's API rate limit: the provider's own token bucket, on the simulated clock (a
      // fault, lifted when the faults stop). A throttled call reaches onCall as 'throttled'.
      maxCallsPerSecond: provider.simMaxCallsPerSecond,
    });
    this.hooks = {
      onMutation: (gen, op, target) => this.guard(() => this.checker.onMutation(gen, op, target)),
      onCreateCalled: (req) => {
        // The provider makes the instance when the call arrives (before its latency): the first
        // call that made it says what it runs; later ones for the same id return it as it is.
        if (this.images.has(req.idempotencyKey) || !this.sim.find(req.idempotencyKey)) return;
        const image = req.template.image;
        this.images.set(req.idempotencyKey, typeof image === 'string' ? image : JSON.stringify(req.template));
      },
      inFlight: 0,
      calls: this.calls,
      now: () => this.clock.nowMs(),
      shardList: (generation) => {
        const start = this.clock.nowMs();
        if (this.wonAt === null || generation !== this.runningGeneration) return () => undefined;
        const list = { start, ok: false };
        this.winLists.push(list);
        // The reconciler gave up on a list at its call timeout, whatever the provider did later.
        return (ok) => {
          list.ok = ok && this.clock.nowMs() - start < this.fleet.provider.callTimeoutMs;
        };
      },
      latency: (op) => (op === 'create' ? provider.createLatencyMs : op === 'delete' ? provider.deleteLatencyMs : op === 'list' ? provider.listLatencyMs : 0),
    };
    this.sim.setLatency({ list: provider.listLatencyMs });
    this.sim.onCall((call) => {
      if (call.outcome !== 'ok') {
        this.stats.providerErrors++;
        return;
      }
      if (call.op === 'create' && call.idempotencyKey && call.providerId) this.agentFor(call.idempotencyKey, call.providerId);
      if (call.op === 'delete' && call.providerId) this.killByProvider(call.providerId);
    });
    this.checker = new Invariants({
      now: () => this.clock.nowMs(),
      db: () => this.db,
      provider: this.sim,
      config: () => this.inForce,
      leader: () => this.leader,
      runningGeneration: () => this.runningGeneration,
      graceSince: () => this.graceSince(),
      disturbances: this.disturbances,
      everRemoved: (tenant, group) => this.model.findGroup(tenant, group)?.everRemoved ?? false,
      slackMs: () => this.slackMs(),
      quietSlackMs: () => this.quietSlackMs(),
      callSpacingMs: () => this.callSpacingMs(),
      step: () => this.stepIndex,
      groups: () => this.fleet.groups,
      plannedSize: (tenant, group) => this.reconciler?.sizeDecision(tenant, group)?.size ?? null,
      operatorLog: this.operatorLog,
      calls: this.calls,
      failures: this.failures,
    });
    this.checker.onConfigApplied();
    this.model.autoscaledSize = (tenant, group) => this.checker.autoscaled(tenant, group);
  }

  /**
   * The latest the running reconciler may have begun its health grace, from what the world did
   * and saw: it begins when the reconciler starts, and again when the InitialReconcile of a
   * leadership win is handled, just before that barrier lists the shard; a sync that fails is
   * retried, still for the win, and begins the grace again. So after a win: the start of the
   * first shard list that succeeded, or while none has, of the latest one (the win itself before
   * any). The latest, so that silence the reconciler may legitimately not count yet is not counted
   * here either. (A barrier already running at the win lists before it: a new term's first
   * barrier begins after the win, the previous term's were skipped while not leader.)
   */
  private won(at: number): void {
    this.wonAt = at;
    this.winLists = [];
  }

  private graceSince(): number {
    if (this.wonAt === null) return this.startedAt;
    let since = this.wonAt;
    for (const list of this.winLists) {
      since = Math.max(since, list.start);
      if (list.ok) break;
    }
    return Math.max(this.startedAt, since);
  }

  /**
   * The database as the reconciler sees it: the same one, except that reading a group's live
   * instances (a plan's input) is shown to the checker first (invariant 8 judges a plan on it).
   */
  private reconcilerDb(db: LocalDb): LocalDb {
    const checker = this.checker;
    const live = (tenant: string, group: string): InstanceRecord[] => {
      const records = db.liveInstances(tenant, group);
      checker.onPlanInput(tenant, group, records);
      return records;
    };
    return new Proxy(db, {
      get(target, prop) {
        if (prop === 'liveInstances') return live;
        const value: unknown = Reflect.get(target, prop);
        return typeof value === 'function' ? (value as (...args: unknown[]) => unknown).bind(target) : value;
      },
    });
  }

  /** Runs the scenario to its end (or its first violation, unless told otherwise). */
  async run(): Promise<RunResult> {
    const stopAtFirst = this.options.stopAtFirst !== false;
    this.openDb();
    this.scheduleHealthRound();
    await this.startReconciler();
    this.flushTrace('start', this.describeFleet());
    const steps = this.scenario.steps;
    for (let i = 0; i < steps.length; i++) {
      const step = steps[i];
      if (!step) continue;
      this.stepIndex = i;
      await this.advance(step.dtMs);
      const detail = await this.apply(step.action);
      await this.settle();
      this.checker.checkStep();
      this.flushTrace(`#${i}`, `${describeAction(step.action, this.fleet)}${detail ? ` [${detail}]` : ''}`);
      if (stopAtFirst && this.checker.violations.length > 0) return this.result(i + 1);
    }
    this.stepIndex = steps.length;
    await this.converge(stopAtFirst);
    return this.result(steps.length);
  }

  async dispose(): Promise<void> {
    if (this.autoscaler) await this.autoscaler.stop();
    this.autoscaler = null;
    if (this.reconciler) await this.reconciler.stop({ abandon: true });
    this.reconciler = null;
    this.unsubscribeDb?.();
    this.db?.close();
    this.db = null;
    rmSync(this.dir, { recursive: true, force: true });
  }

  private result(stepsRun: number): RunResult {
    return {
      seed: this.seed,
      violations: [...this.checker.violations],
      trace: this.trace,
      stepsRun,
      simulatedMs: this.clock.nowMs() - this.start,
      convergedAfterMs: this.convergedAfterMs,
      boundMs: this.boundMs,
      stats: { ...this.stats },
    };
  }

  // ---- time ------------------------------------------------------------------------------

  /** Moves the clock (firing every timer on the way, agents' and the reconciler's) and settles. */
  private async advance(ms: number): Promise<void> {
    await this.clock.advance(ms);
    await this.settle();
  }

  /**
   * Lets the reconciler finish what it can without the clock moving: until its queue is empty and
   * idle, at most 200 event-loop turns (a handler waiting for a provider call, which ends only
   * when the clock moves, must not hang the world). It polls instead of awaiting
   * `quiescent()`, so that nothing of a finished world keeps running into the next one.
   */
  private async settle(): Promise<void> {
    for (let i = 0; i < 200; i++) {
      await turns(1);
      const rec = this.reconciler;
      if (i < 2) continue;
      if (!rec) return;
      const s = rec.stats();
      if (s.queueDepth === 0 && s.queueActive === 0) return;
    }
  }

  /** How late a due decision may be: a slow list holds every group (callTimeout), slow status calls hold one each. */
  slackMs(): number {
    return this.fleet.provider.callTimeoutMs + STATUS_TIMEOUT_MS * (this.fleet.groups.length + 1) + 2 * SEC;
  }

  /**
   * How late a due decision may be while no provider call is in trouble: a barrier (a start, a
   * win, a resync) holds every group for its list call, which takes the provider's list latency,
   * and with Drover's own call rate limit the list may wait for a call or two ahead of it.
   */
  quietSlackMs(): number {
    return this.fleet.provider.listLatencyMs + 2 * this.callSpacingMs();
  }

  /** The spacing Drover's own call rate limit (maxCallsPerSecond) puts between two calls. */
  callSpacingMs(): number {
    const { maxCallsPerSecond } = this.fleet.provider;
    return maxCallsPerSecond > 0 ? Math.ceil(SEC / maxCallsPerSecond) : 0;
  }

  // ---- the reconciler's life ----------------------------------------------------------------

  private openDb(): void {
    const db = openLocalDb(this.dbPath);
    this.db = db;
    this.unsubscribeDb = db.subscribe((change) => {
      if (change.kind === 'audit') this.onAudit(change.entry);
    });
  }

  private async startReconciler(): Promise<void> {
    const db = this.db;
    if (!db) throw new Error('sim: starting a reconciler without a database');
    const generation = ++this.generation;
    const provider = new WatchedProvider(this.sim, generation, this.hooks);
    const logger: Logger = {
      debug: () => undefined,
      info: () => undefined,
      warn: () => undefined,
      error: (obj, msg) => {
        if (msg && ESCAPED.has(msg) && this.runningGeneration === generation) this.checker.report('error', `reconciler #${generation}: ${msg}: ${JSON.stringify(obj)}`);
      },
    };
    const localDb = this.reconcilerDb(db);
    this.reconciler = new Reconciler({
      instanceManager: new DefaultInstanceManager({ localDb: db, provider, configLoader: this.reconcilerLoader, clock: this.clock }),
      configLoader: this.reconcilerLoader,
      localDb,
      ...(this.options.plant === 'protect' || this.options.plant === 'sleep'
        ? { operatorState: new BlindState(new LocalOperatorState(db, () => this.clock.now()), this.options.plant === 'protect' ? keys.protection('') : keys.sleep('')) }
        : {}),
      provider,
      clock: this.clock,
      logger,
      random: seededRandom(hash32(this.seed, `reconciler#${generation}`)),
      firstHealthReplanIntervalMs: this.fleet.firstHealthReplanMs,
      isLeader: () => this.options.plant === 'leader' || this.leader,
      notifyDrain: (instanceId, group, reason, _unhealthyAt, deleteAt) => this.guard(() => this.onDrainNotice(generation, instanceId, group, reason, deleteAt)),
      notifyError: () => undefined,
    });
    this.runningGeneration = generation;
    this.startedAt = this.clock.nowMs();
    this.wonAt = null;
    this.winLists = [];
    if (this.leader) this.disturbances.end(this.clock.nowMs());
    await this.reconciler.start();
    this.autoscaler = new Autoscaler({
      target: this.reconciler,
      configLoader: this.reconcilerLoader,
      audit: db,
      clock: this.clock,
      logger,
      isLeader: () => this.options.plant === 'leader' || this.leader,
      query: async (spec) => {
        const load = this.loads.get(spec.query);
        if (!load) return { ok: false, kind: 'no_value', error: new UnavailableError(`querying Prometheus ${spec.prometheus}: no sample for ${spec.query}`) };
        if (this.clock.nowMs() < load.failingUntil) return { ok: false, kind: 'error', error: new UnavailableError(`querying Prometheus ${spec.prometheus}: connection refused`) };
        return { ok: true, value: load.value };
      },
    });
    this.autoscaler.start();
    await this.settle();
  }

  private async crashAndRestart(downtimeMs: number): Promise<void> {
    const rec = this.reconciler;
    this.reconciler = null;
    const autoscaler = this.autoscaler;
    this.autoscaler = null;
    if (autoscaler) await autoscaler.stop();
    this.runningGeneration = null;
    this.disturbances.begin(this.clock.nowMs());
    if (rec) await rec.stop({ abandon: true });
    this.unsubscribeDb?.();
    this.unsubscribeDb = null;
    this.db?.close();
    this.db = null;
    this.stats.restarts++;
    if (downtimeMs > 0) await this.clock.advance(downtimeMs);
    else await turns(3);
    this.openDb();
    await this.startReconciler();
  }

  private send(event: ReconcileEvent): boolean {
    if (!this.reconciler) return false;
    if (event.type === EventType.DrainAcked && event.instanceId) this.checker.acked.add(event.instanceId);
    this.reconciler.enqueue(event);
    return true;
  }

  /** Runs a checker hook; an exception in the checker is a simulator bug, reported as such. */
  private guard(fn: () => void): void {
    try {
      fn();
    } catch (err) {
      this.checker.report('error', `simulator check threw: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}`);
    }
  }

  /**
   * After convergence, per group: instances that left (other than rotation targets, whose
   * replacement was made first: expiry, drift, operator) and creates (other than rotation
   * replacements). A create with nothing left to replace is a storm. Counted, not matched:
   * which departure a create names as the one it replaces is the plan's guess.
   */
  private readonly afterConvergence = new Map<string, { left: Set<string>; created: number }>();

  private checkStorm(entry: AuditEntry): void {
    const key = `${entry.tenant}/${entry.group}`;
    let group = this.afterConvergence.get(key);
    if (!group) {
      group = { left: new Set(), created: 0 };
      this.afterConvergence.set(key, group);
    }
    // Rotations are replacement first: expiry and drift coming due, and operator drains requested
    // before the faults stopped that waited (for a protection or a budget window) until after.
    const rotation = isRotation(entry.reason);
    if (entry.action === 'create' && !rotation) {
      group.created++;
      if (group.created > group.left.size) {
        this.checker.report('6', `replacement storm: ${entry.instanceId ?? '?'} created (${entry.reason}) in ${key} after the fleet had converged, with ${group.left.size} instance(s) gone to replace`);
      }
    } else if ((entry.action === 'drain' || entry.action === 'delete' || entry.action === 'vanished') && !rotation && entry.instanceId) {
      group.left.add(entry.instanceId);
    }
  }

  private onAudit(entry: AuditEntry): void {
    this.guard(() => this.checker.onAudit(entry));
    if (this.stable) this.checkStorm(entry);
    const id = entry.instanceId ? shortId(entry.instanceId) : '-';
    switch (entry.action) {
      case 'create':
        this.stats.creates++;
        break;
      case 'drain':
        this.stats.drains++;
        break;
      case 'deleted':
        this.stats.deletes++;
        break;
      default:
        break;
    }
    if (entry.action !== 'drainAcked' || this.observations.length < 40) this.observations.push(`${entry.action} ${entry.group}/${id} ${entry.reason}`);
  }

  private flushTrace(label: string, text: string): void {
    const obs = this.observations.length > 0 ? ` => ${this.observations.join(', ')}` : '';
    const bad = this.checker.violations.filter((v) => v.step === this.stepIndex).map((v) => ` !! ${v.invariant}: ${v.message}`);
    this.trace.push(`${label} ${clockText(this.clock.nowMs() - this.start)} ${text}${obs}${bad.join('')}`);
    this.observations = [];
  }

  private describeFleet(): string {
    const { shard, provider } = this.fleet;
    const groups = this.fleet.groups.map(
      (g) =>
        `${g.tenant}/${g.group} size ${g.size} surge ${g.maxSurge} drain ${g.drainTimeoutMs === null ? 'default' : `${g.drainTimeoutMs / SEC}s`}` +
        (g.eligibleAgeMs || g.forcedAgeMs ? ` expiry ${g.eligibleAgeMs / MIN}m/${g.forcedAgeMs / MIN}m` : '') +
        g.budgets
          .map((b) => {
            const max = 'count' in b.max ? String(b.max.count) : `${b.max.percent}%`;
            const window = b.window ? ` "${b.window.schedule}" ${b.window.durationMs / MIN}m ${b.window.timezone}` : '';
            return ` budget ${max} ${b.reasons ? b.reasons.join(',') : 'all'}${window}`;
          })
          .join('') +
        (g.maxUnhealthy ? ` maxUnhealthy ${'count' in g.maxUnhealthy ? g.maxUnhealthy.count : `${g.maxUnhealthy.percent}%`}` : '') +
        (g.sizing ? ` min ${g.sizing.min} max ${g.sizing.max}${g.sizing.schedules.map((sc) => ` schedule "${sc.cron}" ${sc.timezone} size ${sc.size}`).join('')}` : ''),
    );
    return (
      `${new Date(this.start).toISOString()} fleet: ${groups.join('; ')}; health ${shard.healthCheckIntervalMs / SEC}s x${shard.missedHealthThreshold}, startup ${shard.startupTimeoutMs / SEC}s, ` +
      `default drain ${shard.defaultDrainTimeoutMs / SEC}s, resync ${shard.resyncIntervalMs / SEC}s, attempts ${shard.maxAttempts}, workers ${shard.workers}, ` +
      `create gap ${shard.createRateLimitMs / SEC}s; provider timeout ${provider.callTimeoutMs / SEC}s, latency ${provider.createLatencyMs / SEC}/${provider.deleteLatencyMs / SEC}/${provider.listLatencyMs / SEC}s, ` +
      `rate ${provider.maxCallsPerSecond}/${provider.simMaxCallsPerSecond}; first-health replan window ${this.fleet.firstHealthReplanMs}ms`
    );
  }

  // ---- agents --------------------------------------------------------------------------------

  private agentFor(instanceId: string, providerId: string): void {
    if (this.agentSeen.has(instanceId)) return;
    const instance = this.sim.find(providerId);
    if (!instance || (instance.status !== 'running' && instance.status !== 'pending')) return;
    this.agentSeen.add(instanceId);
    const agent: Agent = {
      id: instanceId,
      tenant: instance.tags[TAGS.tenant] ?? '',
      group: instance.tags[TAGS.group] ?? '',
      providerId,
      booted: false,
      silentUntil: this.options.plant === 'silence' && !this.faultsOn ? Number.POSITIVE_INFINITY : 0,
      frozenUntil: null,
      drains: 0,
    };
    this.agents.set(instanceId, agent);
    const bootMs = 2 * SEC + Math.floor(unit(this.seed, `${instanceId}:boot`) * (this.fleet.bootMaxMs - 2 * SEC));
    this.clock.schedule(this.clock.nowMs() + bootMs, () => {
      if (this.agents.get(instanceId) !== agent) return;
      agent.booted = true;
      this.report(agent);
    });
  }

  private killByProvider(providerId: string): void {
    for (const agent of this.agents.values()) {
      if (agent.providerId === providerId) {
        this.kill(agent.id);
        return;
      }
    }
  }

  /** The instance is gone or dead: its agent with it, and any correlated failure it was in ends for it. */
  private kill(instanceId: string): void {
    this.agents.delete(instanceId);
    this.failures.end(instanceId, this.clock.nowMs());
  }

  /** The agent reports (up, not silent, not frozen). */
  private speaks(agent: Agent, now: number): boolean {
    return agent.booted && now >= agent.silentUntil && agent.frozenUntil === null;
  }

  private report(agent: Agent): void {
    if (!this.db || !this.speaks(agent, this.clock.nowMs())) return;
    this.db.recordHealth(agent.id, this.clock.now());
  }

  /** Every agent reports once per health-check interval (ingested in one batch, as the server does). */
  private scheduleHealthRound(): void {
    this.clock.schedule(this.clock.nowMs() + this.fleet.shard.healthCheckIntervalMs, () => {
      const now = this.clock.nowMs();
      const at = this.clock.now();
      const reports: Array<{ instanceId: string; at: Date }> = [];
      for (const agent of this.agents.values()) if (this.speaks(agent, now)) reports.push({ instanceId: agent.id, at });
      if (this.db && reports.length > 0) this.db.recordHealthBatch(reports);
      this.scheduleHealthRound();
    });
  }

  /**
   * A drain notice reaches the instance's agent, which acknowledges it on time, late, twice, at
   * once, or never (drawn per instance and drain, so it survives shrinking). After the faults
   * stop, agents acknowledge on time.
   */
  private onDrainNotice(generation: number, instanceId: string, group: string, reason: string, deleteAt: Date): void {
    this.checker.onDrainNotice(generation, instanceId, reason, deleteAt);
    const agent = this.agents.get(instanceId);
    if (!agent) return;
    agent.drains++;
    const now = this.clock.nowMs();
    const window = Math.max(0, deleteAt.getTime() - now);
    const u = unit(this.seed, `${instanceId}:ack:${agent.drains}`);
    const v = unit(this.seed, `${instanceId}:ackDelay:${agent.drains}`);
    const onTime = now + Math.floor(v * Math.min(0.9 * window, MIN));
    const slash = group.indexOf('/');
    const ack = (at: number): void => {
      this.clock.schedule(at, () => {
        const a = this.agents.get(instanceId);
        if (!a || this.clock.nowMs() < a.silentUntil || a.frozenUntil !== null) return; // a dead, hung or frozen agent cannot ack
        this.send({ type: EventType.DrainAcked, tenant: group.slice(0, slash), groupKey: group.slice(slash + 1), instanceId, cause: 'agent' });
      });
    };
    if (!this.faultsOn || u < 0.45) ack(onTime);
    else if (u < 0.6) ack(deleteAt.getTime() + 1 + Math.floor(v * 2 * MIN));
    else if (u < 0.75) return; // never
    else if (u < 0.9) {
      ack(onTime);
      ack(onTime + 1 + Math.floor(v * 30 * SEC));
    } else ack(now);
  }

  // ---- actions -------------------------------------------------------------------------------

  private pickInstance(groupIndex: number, pick: number): SimInstance | null {
    const spec = this.fleet.groups[groupIndex];
    if (!spec) return null;
    const candidates = this.sim
      .instances()
      .filter((i) => i.tags[TAGS.tenant] === spec.tenant && i.tags[TAGS.group] === spec.group && (i.status === 'running' || i.status === 'pending'))
      .sort((a, b) => (a.providerId < b.providerId ? -1 : 1));
    return candidates[Math.floor(pick * candidates.length)] ?? null;
  }

  private applyConfig(): void {
    const result = this.loader.update(this.model.render());
    if (!result.ok) throw new Error(`sim: a valid config was rejected: ${result.error.message}`);
    if (this.planted) this.reconcilerLoader.update(this.model.render(this.planted));
    this.inForce = this.model.inForce();
    this.checker.onConfigApplied();
  }

  /** Applies one action; returns what it did, for the trace. */
  private async apply(action: Action): Promise<string> {
    const now = this.clock.nowMs();
    switch (action.kind) {
      case 'wait':
        return '';
      case 'providerFail':
        this.sim.failNext(action.op, action.n, { permanent: action.permanent });
        return '';
      case 'providerSlow':
        this.sim.slowNext(action.op, action.n, action.delayMs);
        return '';
      case 'instance':
        return this.instanceFault(action);
      case 'ack':
        return this.operatorAck(action);
      case 'operator':
        return this.operatorAction(action);
      case 'protect':
      case 'unprotect':
        return this.protectAction(action);
      case 'partition':
        return this.partition(action);
      case 'freeze':
        return this.freeze(action);
      case 'scale': {
        const g = this.model.group(action.group);
        if (!g) return 'no group';
        // The size of a group with schedules is theirs (README.md: the operator leaves it alone).
        if (g.spec.sizing) return 'the group follows its schedules; size unchanged';
        g.size = action.size;
        if (!g.removed) this.applyConfig();
        return g.removed ? 'group removed; kept for later' : '';
      }
      case 'templateChange': {
        const name = this.fleet.templates[action.template] ?? 'a';
        const version = this.model.bumpTemplate(name);
        this.applyConfig();
        return `${name}:${version}`;
      }
      case 'switchTemplate': {
        const g = this.model.group(action.group);
        const name = this.fleet.templates[action.template];
        if (!g || !name) return 'no group';
        if (g.template === name) return 'unchanged';
        g.template = name;
        if (!g.removed) this.applyConfig();
        return '';
      }
      case 'removeGroup': {
        const g = this.model.group(action.group);
        if (!g || g.removed) return 'already removed';
        // Its autoscale state would go with it (the autoscaler forgets a group that leaves), which
        // the checker does not model: an autoscaled group stays.
        if (g.spec.sizing?.autoscale) return 'the group autoscales; kept';
        g.removed = true;
        g.everRemoved = true;
        this.applyConfig();
        return '';
      }
      case 'restoreGroup': {
        const g = this.model.group(action.group);
        if (!g || !g.removed) return 'not removed';
        g.removed = false;
        this.applyConfig();
        return '';
      }
      case 'invalidConfig': {
        const before = this.loader.getCurrent();
        const result = this.loader.update(this.model.renderInvalid(action.flavor, action.group));
        if (this.planted) this.reconcilerLoader.update(this.model.renderInvalid(action.flavor, action.group, this.planted));
        if (result.ok || this.loader.getCurrent() !== before) {
          this.checker.report('config', `an invalid config (${action.flavor}) was accepted`);
          return 'accepted!';
        }
        const first = result.error.issues[0];
        return `rejected: ${first ? `${first.path}: ${first.message}` : result.error.message}`;
      }
      case 'loseLeadership':
        if (!this.leader) return 'not leader already';
        this.leader = false;
        this.autoscaler?.setLeader(false);
        this.stats.leaderChanges++;
        this.disturbances.begin(now);
        return '';
      case 'regainLeadership':
        if (this.leader) return 'leader already';
        this.leader = true;
        this.autoscaler?.setLeader(true);
        this.stats.leaderChanges++;
        if (this.reconciler) this.disturbances.end(now);
        // A leadership win gives every agent a fresh health grace (README.md).
        if (this.reconciler) this.won(now);
        this.send({ type: EventType.InitialReconcile, cause: 'leader' });
        return '';
      case 'crashRestart':
        await this.crashAndRestart(action.downtimeMs);
        return `generation ${this.generation}`;
      case 'sleep':
      case 'wake':
        return this.sleepAction(action);
      case 'load':
      case 'loadFail': {
        const g = autoscaledGroups(this.fleet)[action.group];
        const load = g ? this.loads.get(loadQuery(g.tenant, g.group)) : undefined;
        if (!g || !load) return 'no autoscaled group';
        if (action.kind === 'load') load.value = action.value;
        else load.failingUntil = now + action.durationMs;
        return '';
      }
    }
  }

  /**
   * A tenant put to sleep or woken, as `POST /v1/tenants/:tenant/sleep|wake` does: the decision in
   * the operator state, and each of its configured groups marked for a reconcile.
   */
  private async sleepAction(action: Extract<Action, { kind: 'sleep' | 'wake' }>): Promise<string> {
    const tenant = tenantsOf(this.fleet)[action.tenant];
    const rec = this.reconciler;
    if (tenant === undefined || !rec) return 'no tenant';
    // The API refuses a replica that does not lead (NotLeaderError): so does the operator here.
    if (!this.leader) return 'refused: not leader';
    const now = this.clock.nowMs();
    if (action.kind === 'sleep') {
      const until = action.untilMs === null ? null : now + action.untilMs;
      await rec.sleepTenant(tenant, until === null ? null : new Date(until), 'sim-operator');
      // Asked again while asleep, a sleep keeps its start and moves its end (README.md).
      const current = this.model.sleeps.get(tenant);
      this.model.sleeps.set(tenant, { at: current && asleep(current, now) ? current.at : now, until });
      return '';
    }
    const change = await rec.wakeTenant(tenant, 'sim-operator');
    if (!change.changed) return 'awake already';
    this.model.sleeps.delete(tenant);
    this.model.wokenAt.set(tenant, now);
    return '';
  }

  /**
   * Once the faults stop the operator wakes every tenant and removes every schedule and autoscale,
   * so that the sizes hold still while the fleet converges (the trace says so).
   */
  private async liftSizing(): Promise<void> {
    const sleeping = [...this.model.sleeps.keys()];
    for (const tenant of sleeping) await this.sleepAction({ kind: 'wake', tenant: tenantsOf(this.fleet).indexOf(tenant) });
    for (const load of this.loads.values()) load.failingUntil = 0;
    const scheduled = this.model.groups.filter((g) => g.spec.sizing && !g.removed).map((g) => `${g.spec.tenant}/${g.spec.group}`);
    if (scheduled.length > 0) {
      this.model.schedulesLifted = true;
      this.applyConfig();
    }
    if (sleeping.length > 0 || scheduled.length > 0) this.flushTrace('end', `operator wakes ${sleeping.length > 0 ? sleeping.join(', ') : 'no tenant'} and removes the schedules and autoscale of ${scheduled.length > 0 ? scheduled.join(', ') : 'no group'}`);
  }

  private instanceFault(action: Extract<Action, { kind: 'instance' }>): string {
    const target = this.pickInstance(action.group, action.pick);
    if (!target) return 'no target';
    const id = target.idempotencyKey;
    const tenant = target.tags[TAGS.tenant] ?? '';
    const groupKey = target.tags[TAGS.group] ?? '';
    const now = this.clock.nowMs();
    const disconnect = (): boolean =>
      this.send({ type: EventType.CheckInstance, tenant, groupKey, instanceId: id, cause: 'disconnect', timestamp: new Date(now), preventDuplicate: true });
    switch (action.fault) {
      case 'crash':
        this.sim.setStatus(target.providerId, 'stopped');
        this.kill(id);
        if (action.announce) disconnect();
        break;
      case 'stop':
        this.sim.setStatus(target.providerId, 'stopping');
        this.kill(id);
        this.clock.schedule(now + 30 * SEC, () => {
          if (this.sim.find(target.providerId)?.status === 'stopping') this.sim.setStatus(target.providerId, 'stopped');
        });
        if (action.announce) this.send({ type: EventType.CheckInstance, tenant, groupKey, instanceId: id, cause: 'providerEvent' });
        break;
      case 'vanish':
        this.sim.vanish(target.providerId);
        this.kill(id);
        if (action.announce) this.send({ type: EventType.InstanceDeleted, tenant, groupKey, instanceId: id });
        break;
      case 'silence': {
        const agent = this.agents.get(id);
        if (agent) agent.silentUntil = action.durationMs === null ? Number.POSITIVE_INFINITY : now + action.durationMs;
        if (action.announce) disconnect();
        break;
      }
      case 'disconnect': {
        disconnect();
        const agent = this.agents.get(id);
        if (agent && action.durationMs !== null) agent.silentUntil = Math.max(agent.silentUntil, now + action.durationMs);
        break;
      }
      case 'notice': {
        const at = action.durationMs === null ? null : now + action.durationMs;
        this.send({ type: EventType.TerminationNotice, tenant, groupKey, instanceId: id, ...(at === null ? {} : { timestamp: new Date(at) }) });
        // The provider reclaims the instance at the notice's time.
        this.clock.schedule(at ?? now + this.fleet.shard.defaultNoticeWindowMs, () => {
          if (!this.sim.find(target.providerId)) return;
          this.sim.vanish(target.providerId);
          this.kill(id);
          if (action.announce) this.send({ type: EventType.InstanceDeleted, tenant, groupKey, instanceId: id });
        });
        break;
      }
    }
    return shortId(id);
  }

  /** Drain requests, cancels, extensions and forced ends through the reconciler's operator API. */
  private async operatorAction(action: Extract<Action, { kind: 'operator' }>): Promise<string> {
    const db = this.db;
    const rec = this.reconciler;
    const spec = this.fleet.groups[action.group];
    if (!db || !rec || !spec) return 'no target';
    const mine = db.liveInstances(spec.tenant, spec.group);
    const wanted = action.op === 'drain' || action.op === 'drainForce' ? ['running'] : action.op === 'cancel' ? ['draining', 'running'] : ['draining'];
    // A cancel mostly aims at a cancellable drain (a rotation's), sometimes at anything (refused).
    const cancellable = mine.filter((i) => i.status === 'draining' && ['operator', 'expiry', 'drift'].includes(i.drainReason ?? ''));
    const candidates = action.op === 'cancel' && cancellable.length > 0 && action.pick < 0.8 ? cancellable : mine.filter((i) => wanted.includes(i.status));
    const target = candidates[Math.floor(((action.pick * 10) % 1) * candidates.length)];
    if (!target) return 'no target';
    try {
      switch (action.op) {
        case 'drain':
        case 'drainForce':
          await rec.operator.requestDrain(target.id, { force: action.op === 'drainForce', actor: 'sim' });
          this.operatorLog.request(target.id, action.op === 'drainForce');
          break;
        case 'cancel': {
          await rec.operator.cancelDrain(target.id, 'sim');
          this.operatorLog.cancel(target.id);
          break;
        }
        case 'extend': {
          const result = await rec.operator.extendDrain(target.id, action.byMs, 'sim');
          const added = result.drainDeadline.getTime() - (target.drainDeadline?.getTime() ?? result.drainDeadline.getTime());
          this.extendedMs += Math.max(0, added);
          break;
        }
        case 'force':
          this.checker.acked.add(target.id); // a forced end is an acknowledgement by the operator
          await rec.operator.forceDrain(target.id, 'sim');
          break;
      }
      return `${shortId(target.id)}: done`;
    } catch (err) {
      return `${shortId(target.id)}: refused (${err instanceof Error ? err.message : String(err)})`;
    }
  }

  /**
   * Protection through the reconciler's operator API: for a while (aimed mostly at an instance in
   * a rotation or due for one: old template, past eligible age, replacement under way), or
   * removed. The world keeps its own log of what was protected when (invariant 9 reads it).
   */
  private async protectAction(action: Extract<Action, { kind: 'protect' | 'unprotect' }>): Promise<string> {
    const db = this.db;
    const rec = this.reconciler;
    const spec = this.fleet.groups[action.group];
    if (!db || !rec || !spec) return 'no target';
    const now = this.clock.nowMs();
    const mine = db.liveInstances(spec.tenant, spec.group);
    let candidates: InstanceRecord[];
    if (action.kind === 'unprotect') {
      const held = new Set(this.operatorLog.protectedIds(now));
      candidates = mine.filter((i) => held.has(i.id));
      if (candidates.length === 0 || action.pick >= 0.85) candidates = mine;
    } else {
      candidates = mine.filter((i) => i.status === 'running' || i.status === 'creating');
      if (action.target === 'rotation') {
        const settings = this.inForce.group(spec.tenant, spec.group);
        const rotating = candidates.filter(
          (i) =>
            i.status === 'running' &&
            (mine.some((r) => r.replaces === i.id) ||
              (settings !== null && (this.images.get(i.id) !== settings.image || (settings.eligibleAgeMs > 0 && i.createdAt.getTime() + settings.eligibleAgeMs <= now + 10 * MIN)))),
        );
        if (rotating.length > 0) candidates = rotating;
      }
    }
    const target = candidates[Math.floor(action.pick * candidates.length)];
    if (!target) return 'no target';
    try {
      if (action.kind === 'protect') {
        const { protectedUntil } = await rec.operator.protect(target.id, new Date(now + action.durationMs), 'sim');
        this.operatorLog.protect(target.id, this.clock.nowMs(), protectedUntil.getTime());
      } else {
        await rec.operator.unprotect(target.id, 'sim');
        this.operatorLog.unprotect(target.id, this.clock.nowMs());
      }
      return `${shortId(target.id)}: done`;
    } catch (err) {
      return `${shortId(target.id)}: refused (${err instanceof Error ? err.message : String(err)})`;
    }
  }

  /** A network partition: many of a group's agents go silent at once (the health brake's case). */
  private partition(action: Extract<Action, { kind: 'partition' }>): string {
    const spec = this.fleet.groups[action.group];
    if (!spec) return 'no group';
    const now = this.clock.nowMs();
    const mine = [...this.agents.values()].filter((a) => a.tenant === spec.tenant && a.group === spec.group).sort((a, b) => (a.id < b.id ? -1 : 1));
    // With a brake and `over`: at least maxUnhealthy + over agents (a partition that trips it).
    const max = this.maxUnhealthyOf(spec.tenant, spec.group);
    const n = Math.min(mine.length, Math.max(Math.ceil(action.fraction * mine.length), max !== null && action.over !== undefined ? max + action.over : 0));
    const silenced = mine.slice(0, n);
    const until = action.durationMs === null ? Number.POSITIVE_INFINITY : now + action.durationMs;
    // Recorded before the agents go silent: whether each served is judged on the world as it stood.
    this.checker.onCorrelatedFailure(
      'partition',
      spec.tenant,
      spec.group,
      silenced.map((a) => ({ id: a.id, up: this.speaks(a, now), until })),
    );
    for (const agent of silenced) {
      agent.silentUntil = Math.max(agent.silentUntil, until);
      if (action.announce) {
        this.send({ type: EventType.CheckInstance, tenant: agent.tenant, groupKey: agent.group, instanceId: agent.id, cause: 'disconnect', timestamp: new Date(now), preventDuplicate: true });
      }
    }
    return `${silenced.length} of ${mine.length} agents`;
  }

  /** maxUnhealthy of a configured group, resolved against its size in force (null: no brake). */
  private maxUnhealthyOf(tenant: string, group: string): number | null {
    const settings = this.inForce.group(tenant, group);
    return settings?.maxUnhealthy ? resolveQuantity(settings.maxUnhealthy, settings.size) : null;
  }

  /**
   * A correlated failure: k of a group's live instances stop in one instant (the provider says
   * `stopped`, their agents neither report nor acknowledge), disconnects reported or not, and
   * come back together (the provider says `running` again; the agents report from the next
   * health round) after the step's duration, or when the faults stop. Frozen for good (no
   * duration), they stay stopped, as a crash leaves an instance.
   */
  private freeze(action: Extract<Action, { kind: 'freeze' }>): string {
    const spec = this.fleet.groups[action.group];
    if (!spec) return 'no group';
    const now = this.clock.nowMs();
    const live = this.sim
      .instances()
      .filter((i) => i.tags[TAGS.tenant] === spec.tenant && i.tags[TAGS.group] === spec.group && (i.status === 'running' || i.status === 'pending'))
      .sort((a, b) => (a.providerId < b.providerId ? -1 : 1));
    if (live.length === 0) return 'no target';
    const max = this.maxUnhealthyOf(spec.tenant, spec.group);
    const k = Math.min(live.length, Math.max(1, max === null ? Math.ceil(action.fraction * live.length) : max + action.over));
    const first = Math.floor(action.pick * live.length);
    const chosen = Array.from({ length: k }, (_, j) => live[(first + j) % live.length]).filter((i): i is SimInstance => i !== undefined);
    const until = action.durationMs === null ? Number.POSITIVE_INFINITY : now + action.durationMs;
    this.checker.onCorrelatedFailure(
      'freeze',
      spec.tenant,
      spec.group,
      chosen.map((i) => {
        const agent = this.agents.get(i.idempotencyKey);
        return { id: i.idempotencyKey, up: agent !== undefined && this.speaks(agent, now), until };
      }),
    );
    const frozen: Agent[] = [];
    for (const inst of chosen) {
      this.sim.setStatus(inst.providerId, 'stopped');
      const agent = this.agents.get(inst.idempotencyKey);
      if (agent) {
        agent.frozenUntil = until;
        frozen.push(agent);
      }
      if (action.announce) {
        this.send({ type: EventType.CheckInstance, tenant: spec.tenant, groupKey: spec.group, instanceId: inst.idempotencyKey, cause: 'disconnect', timestamp: new Date(now), preventDuplicate: true });
      }
    }
    if (Number.isFinite(until)) this.clock.schedule(until, () => this.thaw(frozen, until));
    return `${k} of ${live.length}${max === null ? '' : ` (maxUnhealthy ${max})`}: ${chosen.map((i) => shortId(i.idempotencyKey)).join(' ')}`;
  }

  /** Frozen agents (and their instances) come back, unless something else happened to them meanwhile. */
  private thaw(agents: readonly Agent[], until: number): void {
    const now = this.clock.nowMs();
    for (const agent of agents) {
      if (this.agents.get(agent.id) !== agent || agent.frozenUntil !== until) continue;
      agent.frozenUntil = null;
      if (this.sim.find(agent.providerId)?.status === 'stopped') {
        this.sim.setStatus(agent.providerId, 'running');
        this.failures.resume(agent.id, now);
      } else {
        this.failures.end(agent.id, now);
      }
    }
  }

  private operatorAck(action: Extract<Action, { kind: 'ack' }>): string {
    const db = this.db;
    const spec = this.fleet.groups[action.group];
    if (!db || !spec) return 'no target';
    const mine = db.listInstances({ tenant: spec.tenant, group: spec.group, includeDeleted: action.target === 'deleted' });
    const choose = <T>(items: readonly T[]): T | undefined => items[Math.floor(action.pick * items.length)];
    let instanceId: string | undefined;
    switch (action.target) {
      case 'draining':
      case 'noGroup':
        instanceId = choose(mine.filter((i) => i.status === 'draining'))?.id;
        break;
      case 'running':
        instanceId = choose(mine.filter((i) => i.status === 'running'))?.id;
        break;
      case 'deleted':
        instanceId = choose(mine.filter((i) => i.status === 'deleted'))?.id;
        break;
      case 'otherGroup':
        instanceId = choose(db.listInstances().filter((i) => i.tenant !== spec.tenant || i.group !== spec.group))?.id;
        break;
      case 'unknown':
        instanceId = 'i-unknown';
        break;
    }
    if (!instanceId) return 'no target';
    const event: ReconcileEvent =
      action.target === 'noGroup'
        ? { type: EventType.DrainAcked, instanceId, cause: 'operator' }
        : { type: EventType.DrainAcked, tenant: spec.tenant, groupKey: spec.group, instanceId, cause: 'operator' };
    this.send(event);
    if (action.twice) this.send(event);
    return shortId(instanceId);
  }

  // ---- the end: faults stop, the fleet must converge --------------------------------------------

  /**
   * How long after the faults stop the fleet may take to converge. Each term is a worst case
   * that may follow the previous one; see sim/README.md.
   */
  convergenceBound(): number {
    const { shard, provider, bootMaxMs } = this.fleet;
    const config = this.inForce;
    const interval = config.shard.healthCheckIntervalMs;
    const t0 = this.clock.nowMs();
    let maxDrain = config.shard.defaultDrainTimeoutMs;
    let maxStartup = config.shard.startupTimeoutMs;
    let rotations = 0;
    let scaleDowns = 0;
    let brake = false;
    const zeroWindows: WindowSpec[] = [];
    for (const s of config.groups) {
      const { tenant, group } = s;
      maxDrain = Math.max(maxDrain, s.drainTimeoutMs);
      maxStartup = Math.max(maxStartup, s.startupTimeoutMs);
      // Budgets: a rotation or scale-down batch is no larger than the smallest non-zero max
      // covering it; a zero max holds them while its window is open (added below).
      const smallest = (reason: VoluntaryReasonDraw): number => {
        let m = Number.POSITIVE_INFINITY;
        for (const b of s.budgets) {
          const max = resolveMax(b.max, s.size);
          if (max === 0 && b.window) zeroWindows.push(b.window);
          if (max > 0 && b.reasons.includes(reason)) m = Math.min(m, max);
        }
        return m;
      };
      if (s.maxUnhealthy) brake = true;
      const perRotation =
        provider.createLatencyMs + shard.createRateLimitMs * (s.size + 1) + bootMaxMs + interval + Math.min(s.drainTimeoutMs, MIN) + provider.deleteLatencyMs + 10 * SEC;
      const batch = Math.min(s.maxSurge, smallest('drift'));
      const drift = s.maxSurge > 0 ? Math.ceil(s.size / batch) * perRotation : 0;
      const expiry = s.eligibleAgeMs > 0 && s.maxSurge > 0 ? s.size * perRotation : 0;
      rotations = Math.max(rotations, drift + expiry);
      const down = smallest('scaleDown');
      if (Number.isFinite(down)) {
        const excess = Math.max(0, (this.db?.liveInstances(tenant, group).length ?? 0) + s.maxSurge - s.size);
        scaleDowns = Math.max(scaleDowns, Math.ceil(excess / down) * (Math.min(s.drainTimeoutMs, MIN) + provider.deleteLatencyMs + 10 * SEC));
      }
    }
    let maxCancelHold = 0;
    for (const g of this.model.groups) {
      maxDrain = Math.max(maxDrain, g.spec.drainTimeoutMs ?? 0);
      maxCancelHold = Math.max(maxCancelHold, g.spec.cancelHoldMs);
    }
    const staleMs = interval * config.shard.missedHealthThreshold;
    // Protection in force holds its instance's rotation (and scale-down) until it ends.
    const protection = Math.max(0, (this.operatorLog.protectedUntil(t0) ?? t0) - t0);
    const base =
      this.slackMs() +
      2 * RETRY_BACKOFF_MAX_MS +
      MAX_NOTICE_MS +
      maxDrain +
      maxStartup +
      staleMs +
      bootMaxMs +
      provider.createLatencyMs +
      rotations +
      scaleDowns +
      maxCancelHold +
      this.extendedMs +
      protection +
      (brake ? this.brakeWaitMs() : 0) +
      2 * interval +
      MIN;
    // Zero-budget windows hold what they cover while open: add the time they are open within the
    // bound (which grows by it), by the checker's own windows.
    let held = 0;
    for (let i = 0; i < 8; i++) {
      const next = openTime(zeroWindows, t0, t0 + base + held);
      if (next === held) break;
      held = next;
    }
    this.boundParts = `protection ${clockText(protection)}, zero-budget windows ${clockText(held)}, scale-down batches ${clockText(scaleDowns)}${brake ? `, brake wait ${clockText(this.brakeWaitMs())}` : ''}`;
    return base + held;
  }

  /**
   * How long after the faults stop a health brake may hold before the operator lifts it: silent
   * agents report again within a health interval, and their instances count as healthy again once
   * the plan sees it. A brake still on then is held by instances that will not recover (stopped
   * at the provider): an operator removes maxUnhealthy, as README.md advises.
   */
  private brakeWaitMs(): number {
    const { shard } = this.inForce;
    return shard.healthCheckIntervalMs * (shard.missedHealthThreshold + 2) + this.slackMs();
  }

  /** Lifts every health brake (maxUnhealthy removed from the config) when one still holds a group. */
  private liftBrakeIfStuck(t0: number): void {
    const rec = this.reconciler;
    if (this.brakeLiftedAt !== null || !rec || this.clock.nowMs() - t0 < this.brakeWaitMs()) return;
    const held = rec.planAll().filter((p) => p.summary.disruption.shortCircuited);
    if (held.length === 0) return;
    this.model.brakeLifted = true;
    this.brakeLiftedAt = this.clock.nowMs();
    this.applyConfig();
    this.flushTrace('end', `operator lifts the health brake (maxUnhealthy removed): still on in ${held.map((p) => `${p.tenant}/${p.group} (${p.summary.unhealthy} unhealthy)`).join(', ')}`);
  }

  /**
   * Zero budgets whose windows together never open for a reason (two may tile the clock, as
   * minutes 0-20 and 20-30 of every half hour do) hold what they cover for good, by design: the
   * operator removes them once the faults stop (the trace says so), as it lifts a stuck brake.
   */
  private liftSealedWindows(): void {
    const now = this.clock.nowMs();
    const horizon = 48 * HOUR;
    const lifted: string[] = [];
    for (const g of this.model.groups) {
      if (g.removed) continue;
      for (const reason of ALL_REASONS) {
        const sealing = g.spec.budgets.filter(
          (b): b is BudgetDraw & { window: NonNullable<BudgetDraw['window']> } =>
            b.window !== null && 'count' in b.max && b.max.count === 0 && (b.reasons === null || b.reasons.includes(reason)) && !this.model.liftedBudgets.has(b),
        );
        if (sealing.length === 0 || openTime(sealing.map((b) => b.window), now, now + horizon) < horizon) continue;
        for (const b of sealing) this.model.liftedBudgets.add(b);
        lifted.push(`${g.spec.tenant}/${g.spec.group} (${reason})`);
      }
    }
    if (lifted.length === 0) return;
    this.applyConfig();
    this.flushTrace('end', `operator removes zero budgets whose windows together never open: ${lifted.join(', ')}`);
  }

  /** Why the fleet has not converged, or null when it has (invariants 5 and 6 hold). */
  notConverged(): string | null {
    const db = this.db;
    if (!db) return 'no database';
    const config = this.inForce;
    const now = this.clock.nowMs();
    const staleMs = config.shard.healthCheckIntervalMs * config.shard.missedHealthThreshold;
    for (const s of config.groups) {
      const { tenant, group } = s;
      const live = db.liveInstances(tenant, group);
      if (live.length !== s.size) return `${tenant}/${group}: ${live.length} live, size ${s.size}`;
      for (const i of live) {
        const name = `${tenant}/${group} ${shortId(i.id)}`;
        if (i.status !== 'running') return `${name} is ${i.status}`;
        if (!i.healthAt || now - i.healthAt.getTime() > staleMs) return `${name} has no fresh health report`;
        if (judged(i) || i.noticeDeadline) return `${name} is judged unhealthy or noticed`;
        if (i.providerStatus !== null && i.providerStatus !== 'running' && i.providerStatus !== 'pending') return `${name} was seen ${i.providerStatus}`;
        // What the instance runs at the provider, not what the store says it runs.
        const image = this.images.get(i.id);
        if (s.maxSurge > 0 && image !== s.image) return `${name} runs ${image ?? 'an unknown image'}, not ${s.image}`;
      }
    }
    for (const g of db.groupsWithLiveInstances()) {
      if (!config.group(g.tenant, g.group)) return `${g.tenant}/${g.group} is not configured but has live instances`;
    }
    const leaks = this.checker.leaks();
    if (leaks) return leaks;
    const held = new Map(this.sim.instances().map((p) => [p.idempotencyKey, p]));
    for (const r of db.listInstances()) {
      const p = held.get(r.id);
      if (!p) return `store holds ${shortId(r.id)} as ${r.status}, the provider does not`;
      if (p.status !== 'running') return `${shortId(r.id)} is ${p.status} at the provider`;
    }
    return null;
  }

  private async converge(stopAtFirst: boolean): Promise<void> {
    // The faults stop: no more injected provider errors, agents report and acknowledge drains,
    // and leadership is (re)won, which runs InitialReconcile as an elector would.
    this.faultsOn = false;
    this.sim.clearFaults();
    this.sim.setRate(0);
    for (const agent of this.agents.values()) {
      agent.silentUntil = this.options.plant === 'silence' ? Number.POSITIVE_INFINITY : 0;
      // Freezes with a duration end with the faults; those for good stay stopped (as crashes do).
      if (agent.frozenUntil !== null && Number.isFinite(agent.frozenUntil)) this.thaw([agent], agent.frozenUntil);
      else if (agent.frozenUntil === null) this.failures.end(agent.id, this.clock.nowMs());
    }
    // Calls already out (slow ones) end, or time out, before the fleet is judged.
    const settledBy = this.clock.nowMs() + this.fleet.provider.callTimeoutMs + MAX_SLOW_MS;
    while (this.hooks.inFlight > 0 && this.clock.nowMs() < settledBy) {
      await this.advance(Math.min(5 * SEC, settledBy - this.clock.nowMs()));
      this.checker.checkStep();
    }
    if (!this.leader) {
      this.leader = true;
      this.stats.leaderChanges++;
      this.autoscaler?.setLeader(true);
    }
    this.disturbances.end(this.clock.nowMs());
    this.liftSealedWindows();
    await this.liftSizing();
    if (this.reconciler) this.won(this.clock.nowMs());
    this.send({ type: EventType.InitialReconcile, cause: 'leader' });
    await this.settle();
    const t0 = this.clock.nowMs();
    this.boundMs = this.convergenceBound();
    this.flushTrace('end', `faults stopped, calls out ended, leadership won; convergence bound ${clockText(this.boundMs)} (${this.boundParts})`);
    const chunk = this.fleet.shard.healthCheckIntervalMs;
    let why = this.notConverged();
    while (why !== null && this.clock.nowMs() - t0 < this.boundMs) {
      await this.advance(Math.min(chunk, t0 + this.boundMs - this.clock.nowMs()));
      this.checker.checkStep();
      this.liftBrakeIfStuck(t0);
      if (stopAtFirst && this.checker.violations.length > 0) {
        this.flushTrace('end', 'converging');
        return;
      }
      why = this.notConverged();
    }
    if (why !== null) {
      const leaks = this.checker.leaks();
      this.checker.report(leaks ? '5' : '6', `not converged ${clockText(this.boundMs)} after the faults stopped: ${leaks ?? why}${this.blockedText()}`);
      this.flushTrace('end', 'not converged');
      return;
    }
    this.convergedAfterMs = this.clock.nowMs() - t0;
    this.flushTrace('end', `converged after ${clockText(this.convergedAfterMs)}`);
    this.stable = true;
    const until = this.clock.nowMs() + STABILITY_WINDOW_MS;
    while (this.clock.nowMs() < until) {
      await this.advance(Math.min(chunk, until - this.clock.nowMs()));
      this.checker.checkStep();
    }
    const leaks = this.checker.leaks();
    if (leaks) this.checker.report('5', `leak after convergence: ${leaks}`);
    this.checker.checkDrainsEnded();
    this.flushTrace('end', 'stable');
  }

  private blockedText(): string {
    const rec = this.reconciler;
    if (!rec) return '';
    const blocks = rec
      .planAll()
      .flatMap((p) => p.blocked.map((b) => `${p.tenant}/${p.group} ${b.code}: ${b.message}`))
      .slice(0, 4);
    return blocks.length > 0 ? ` (blocked: ${blocks.join('; ')})` : '';
  }
}

/** Runs one scenario in a fresh world and cleans up after it. */
export async function runScenario(scenario: Scenario, options: RunOptions = {}): Promise<RunResult> {
  const world = new World(scenario, options);
  // A promise the reconciler rejects without handling is a bug: report it against this run.
  const onRejection = (reason: unknown): void => {
    world.checker.report('error', `unhandled rejection: ${reason instanceof Error ? (reason.stack ?? reason.message) : String(reason)}`);
  };
  process.on('unhandledRejection', onRejection);
  try {
    return await world.run();
  } finally {
    await world.dispose();
    process.off('unhandledRejection', onRejection);
  }
}
