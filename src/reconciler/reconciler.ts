/**
 * Reconciler: keeps every group at its desired size from one event queue, acting only while this
 * server is the shard leader. Events record facts and mark a group; `planGroup` decides; the
 * Executor applies. See docs/architecture.md for the flow.
 */
import { randomBytes } from 'node:crypto';
import { pino } from 'pino';
import { nextTurn, SystemClock, type Clock } from '../clock/index.js';
import { configuredGroups, groupSettings, groupSizing, type ConfigLoader, type DroverConfig, type GroupSettings } from '../config/index.js';
import { errorMessage, InternalError } from '../errors/index.js';
import type { InstanceManager } from '../instances/index.js';
import type { Logger } from '../logging/index.js';
import type { Provider } from '../providers/index.js';
import { CallGate } from '../queue/call-gate.js';
import { Priority } from '../queue/priority.js';
import { KeyedWorkQueue, type QueueObserver } from '../queue/work-queue.js';
import { LocalOperatorState, type OperatorState, type TenantSleep } from '../state/index.js';
import type { LocalDb } from '../store/index.js';
import { randomHex } from '../util/random.js';
import type { Context, ReconcilerObserver } from './context.js';
import { EVENT_TYPES, EventType, describeEvent, eventPriority, groupKeyOf, splitGroupKey, type GroupEvent, type QueuedEvent, type ReconcileEvent } from './events.js';
import { Executor, checkEvent } from './executor.js';
import { BlockHistory } from './explain.js';
import { FactRecorder } from './facts.js';
import { handleFailure } from './failures.js';
import { DisconnectChecks } from './disconnect-checks.js';
import { FirstHealthReplans } from './first-health.js';
import { trackBrake, trackRemoval } from './group-facts.js';
import { GroupSizer, type SleepChange } from './group-sizing.js';
import { initialReconcile, knownGroups } from './initial-reconcile.js';
import { RecentEvents, describeEventSafe, mergeEvents, routeEvent } from './intake.js';
import { TimerKey } from './keys.js';
import { OperatorActions } from './operator-actions.js';
import type { Plan } from './plan.js';
import { PlanInputs } from './plan-inputs.js';
import type { ReconcilerStore } from './ports.js';
import type { SizeDecision } from './sizing.js';
import { DurableTimers } from './timers.js';

export interface ReconcilerOptions {
  instanceManager: InstanceManager;
  configLoader: ConfigLoader;
  localDb: LocalDb;
  provider: Provider;
  /** Called when a drain starts: tell the instance (and the operator) to finish its work by `deleteAt`. */
  notifyDrain: (instanceId: string, group: string, reason: string, unhealthyAt: Date, deleteAt: Date) => void;
  /** Called for every error a handler or provider call meets (`group` is "tenant/group"). */
  notifyError?: (group: string, instanceId: string, errMsg: string) => void;
  /** True while this server is the shard leader. Checked before every mutation. */
  isLeader: () => boolean;
  /** Minimum gap between creates, shard-wide (overrides `shard.createRateLimit`). */
  createRateLimitMs?: number;
  /** pino or anything with the same methods. Default: silent. */
  logger?: Logger;
  clock?: Clock;
  /** Random source for ids and jitter (the simulator passes a seeded one). */
  random?: () => number;
  /** Leadership epoch recorded in the audit (HA mode). */
  epoch?: () => number | null;
  /** Metrics hooks. */
  observer?: ReconcilerObserver & { queue?: QueueObserver };
  /** Timeout of a CheckInstance status call (default 5 s). */
  statusTimeoutMs?: number;
  /** Enqueue InitialReconcile when started (default true). */
  initialReconcileOnStart?: boolean;
  /** Operator decisions (API sizes, protection); default: kept in `localDb`. */
  operatorState?: OperatorState;
  /** Called when an operator cancels a drain (tell the instance's agent). */
  notifyDrainCancelled?: (instanceId: string) => void;
  /**
   * A group's instances reporting their first health replan it at most once per this many ms
   * (the first at once, the rest of the window in one replan at its end). Default 0: every first
   * report replans at once. A plan reads the whole group, so a big group booting at once (2,000
   * first reports within seconds) would otherwise be planned once per report. The server sets it.
   * A group whose plan takes longer than a tenth of this gets a longer window (ten plans' worth:
   * `first-health.ts`).
   */
  firstHealthReplanIntervalMs?: number;
}

const REQUIRED: ReadonlyArray<keyof ReconcilerOptions> = ['instanceManager', 'configLoader', 'localDb', 'provider', 'notifyDrain', 'isLeader'];

/** The cause of a wake-up timer set only for a health report going stale (see `deferSilenceWake`). */
const SILENCE_WAKE = 'silence';

export class Reconciler {
  private readonly opts: ReconcilerOptions;
  private readonly clock: Clock;
  private readonly log: Logger;
  private readonly store: ReconcilerStore;
  /** Operator decisions (sizes set through the API, protection, holds). */
  readonly operatorState: OperatorState;
  /** Operator and workload actions on instances: drain, extend, cancel, force, protect. */
  readonly operator: OperatorActions;
  private readonly random: () => number;
  private readonly queue: KeyedWorkQueue<QueuedEvent>;
  private readonly gate: CallGate;
  private readonly timers: DurableTimers;
  private readonly executor: Executor;
  private readonly sizer: GroupSizer;
  /** When this reconciler first read the config (its start), and when a group's configured size changed since. */
  private configLoadedAt: number;
  private readonly configSizeLoadedAt = new Map<string, number>();
  private readonly facts: FactRecorder;
  private readonly inputs: PlanInputs;
  private readonly ctx: Context;
  private readonly inFlight = new Map<string, 'create' | 'delete'>();
  private readonly recent: RecentEvents;
  private readonly lastPlans = new Map<string, Plan>();
  private readonly blocks = new BlockHistory();
  private readonly unsubscribe: Array<() => void> = [];
  private readonly firstHealth: FirstHealthReplans;
  private readonly disconnectChecks: DisconnectChecks;
  private observingSince: number;
  private state: 'new' | 'running' | 'stopped' = 'new';
  private halted = false;

  constructor(options: ReconcilerOptions) {
    if (options === null || typeof options !== 'object') throw new InternalError('creating the reconciler: options are required');
    for (const name of REQUIRED) {
      if (options[name] === undefined || options[name] === null) throw new InternalError(`creating the reconciler: option "${name}" is required`);
    }
    for (const name of ['notifyDrain', 'isLeader'] as const) {
      if (typeof options[name] !== 'function') throw new InternalError(`creating the reconciler: option "${name}" must be a function`);
    }
    this.opts = options;
    this.clock = options.clock ?? new SystemClock();
    this.log = options.logger ?? pino({ level: 'silent' });
    this.store = options.localDb;
    this.operatorState = options.operatorState ?? new LocalOperatorState(options.localDb, () => this.clock.now());
    const random = options.random;
    this.random = random ?? Math.random;
    this.observingSince = this.clock.nowMs();
    this.configLoadedAt = this.clock.nowMs();
    const config = options.configLoader.getCurrent();
    this.gate = new CallGate({
      clock: this.clock,
      maxCallsPerSecond: config.provider.maxCallsPerSecond,
      maxConcurrent: config.provider.maxConcurrentCalls,
      maxConcurrentCreates: config.provider.maxConcurrentCreates,
      createGapMs: options.createRateLimitMs ?? config.shard.createRateLimit,
      adaptive: config.provider.adaptiveRate,
    });
    // A provider that reports its remaining budget paces the gate (slowing before its limit).
    options.provider.watchRateLimit?.((state) => this.gate.observeBudget(state));
    const healthWindow = (): number => 2 * this.opts.configLoader.getCurrent().shard.healthCheckInterval;
    this.recent = new RecentEvents(this.clock, healthWindow);
    const replanWindowMs = options.firstHealthReplanIntervalMs ?? 0;
    this.firstHealth = new FirstHealthReplans(this.clock, replanWindowMs, (tenant, group) => this.markDirty(tenant, group, 'healthy', Priority.normal));
    this.disconnectChecks = new DisconnectChecks(this.clock, replanWindowMs, (tenant, group) => this.firstHealth.windowFor(tenant, group), (event) => this.enqueueNow(event));
    this.timers = new DurableTimers(this.store, this.clock, (event) => this.enqueue({ ...event, preventDuplicate: false }));
    this.queue = new KeyedWorkQueue<QueuedEvent>({
      concurrency: config.shard.workers,
      handler: (key, events) => this.handleGroup(key, events),
      barrierHandler: (events) => this.handleInitialReconcile(events),
      merge: mergeEvents,
      onError: (key, err) => this.log.error({ group: key, err: errorMessage(err) }, 'queue handler failed'),
      now: () => this.clock.nowMs(),
      observer: options.observer?.queue,
    });
    this.ctx = {
      clock: this.clock,
      log: this.log,
      store: this.store,
      provider: options.provider,
      instanceManager: options.instanceManager,
      configLoader: options.configLoader,
      gate: this.gate,
      timers: this.timers,
      observer: options.observer ?? {},
      random: this.random,
      inFlight: this.inFlight,
      leader: () => this.isLeaderNow(),
      epoch: () => options.epoch?.() ?? null,
      halted: () => this.halted,
      markDirty: (tenant, group, cause, priority) => this.markDirty(tenant, group, cause, priority),
      notifyDrain: (...args) => this.safeNotifyDrain(...args),
      notifyError: (group, instanceId, message) => this.safeNotifyError(group, instanceId, message),
      settings: (tenant, group) => this.effectiveSettings(this.opts.configLoader.getCurrent(), tenant, group),
      operatorState: () => this.operatorState,
      newInstanceId: () => `i-${random ? randomHex(random, 16) : randomBytes(8).toString('hex')}`,
      callTimeoutMs: () => this.opts.configLoader.getCurrent().provider.callTimeout,
      maxAttempts: () => this.opts.configLoader.getCurrent().shard.maxAttempts,
    };
    this.executor = new Executor(this.ctx);
    this.sizer = new GroupSizer(this.ctx, (tenant, group) => this.configSizeLoadedAt.get(groupKeyOf(tenant, group)) ?? this.configLoadedAt);
    this.facts = new FactRecorder(this.ctx, options.statusTimeoutMs ?? 5_000);
    this.inputs = new PlanInputs({
      ctx: this.ctx,
      effectiveSettings: (config, tenant, group) => this.effectiveSettings(config, tenant, group),
      sizeDecision: (config, tenant, group) => this.sizer.decide(config, tenant, group),
      observingSince: () => this.observingSince,
    });
    this.operator = new OperatorActions({
      ctx: this.ctx,
      plan: (tenant, group) => this.plan(tenant, group),
      notifyDrainCancelled: (instanceId) => options.notifyDrainCancelled?.(instanceId),
    });
    this.executor.enqueueCheck = (tenant, group, instanceId, cause) => {
      // A check that failed is retried by its own timer, with backoff. Asking again at once would
      // spin: the plan keeps wanting the check until one succeeds (a throttled or failing provider).
      if (this.timers.has(TimerKey.retry(EventType.CheckInstance, groupKeyOf(tenant, group), instanceId))) return;
      this.enqueue(checkEvent(tenant, group, instanceId, cause));
    };
  }

  // ---- lifecycle -----------------------------------------------------------------------------

  /**
   * Starts processing: restores durable timers, follows config and health changes, and (unless
   * `initialReconcileOnStart` is false) enqueues InitialReconcile.
   */
  async start(): Promise<void> {
    if (this.state !== 'new') throw new InternalError(`starting the reconciler: it is already ${this.state}`);
    this.state = 'running';
    this.observingSince = this.clock.nowMs();
    const restored = this.timers.load();
    this.unsubscribe.push(this.opts.configLoader.onChange((next, prev) => this.onConfigChange(next, prev)));
    this.unsubscribe.push(
      this.store.subscribe((change) => {
        if (change.kind === 'firstHealth') this.firstHealth.onFirstHealth(change.tenant, change.group);
      }),
    );
    this.log.info({ restoredTimers: restored }, 'reconciler started');
    if (this.opts.initialReconcileOnStart !== false) this.enqueue({ type: EventType.InitialReconcile, cause: 'start' });
  }

  /**
   * Stops processing. By default waits for running handlers and provider calls to finish.
   * `{ abandon: true }` stops at once and ignores every late result, as a crash would (for tests
   * and the simulator); the store keeps whatever had been written.
   */
  async stop(options: { abandon?: boolean } = {}): Promise<void> {
    if (this.state === 'stopped') return;
    this.state = 'stopped';
    for (const off of this.unsubscribe.splice(0)) off();
    this.firstHealth.stop();
    this.disconnectChecks.stop();
    this.timers.stop();
    this.queue.pause();
    this.queue.clear();
    if (options.abandon) {
      this.halted = true;
      return;
    }
    await this.queue.idle();
    await this.gate.idle();
    this.halted = true;
    this.log.info({}, 'reconciler stopped');
  }

  /**
   * Adds an event. Never blocks, never throws, never drops a valid event: events coalesce per
   * group and instance. Invalid events are logged and reported through notifyError.
   */
  enqueue(event: ReconcileEvent): void {
    // A lost agent connection's check, in a group whose plans are costly: paced (disconnect-checks.ts).
    if (event?.type === EventType.CheckInstance && event.cause === 'disconnect' && !event.attempt && event.tenant && event.groupKey && event.instanceId && this.state !== 'stopped') {
      this.disconnectChecks.add({ ...event, tenant: event.tenant, groupKey: event.groupKey, instanceId: event.instanceId });
      return;
    }
    this.enqueueNow(event);
  }

  private enqueueNow(event: ReconcileEvent): void {
    try {
      this.enqueueUnsafe(event);
    } catch (err) {
      this.log.error({ event: describeEventSafe(event), err: errorMessage(err) }, 'enqueue failed');
    }
  }

  /**
   * Resolves when nothing is queued, due or in flight: no event waits, no timer is due, no
   * provider call is running. Calls waiting for a future rate-limit slot are not due yet.
   */
  async idle(): Promise<void> {
    for (;;) {
      await this.queue.idle();
      await this.gate.idle();
      if (this.queue.isIdle() && this.gate.isIdle() && !this.timers.hasDue()) return;
      await nextTurn();
    }
  }

  /**
   * Resolves when no event is queued or being handled and no timer is due. Unlike `idle()`, it
   * does not wait for provider calls in flight — for drivers of a manual clock (tests, the
   * simulator), whose provider calls finish only when the clock is moved.
   */
  async quiescent(): Promise<void> {
    for (;;) {
      await this.queue.idle();
      if (this.queue.isIdle() && !this.timers.hasDue() && !this.gate.hasDueWork()) return;
      await nextTurn();
    }
  }

  /**
   * What the reconciler would do for a group now, with reasons. No side effects.
   * `options.size` plans as if the group had that size (a preview before scaling).
   */
  plan(tenant: string, groupKey: string, options: { size?: number } = {}): Plan {
    const config = this.opts.configLoader.getCurrent();
    return this.explain(this.inputs.computePlan(config, tenant, groupKey, options.size));
  }

  /** Plans of every known group (configured or with live instances), no side effects. */
  planAll(): Plan[] {
    const config = this.opts.configLoader.getCurrent();
    return knownGroups(this.store, config).map(({ tenant, group }) => this.explain(this.inputs.computePlan(config, tenant, group)));
  }

  /** The plan with what only the running reconciler knows (explain.ts). */
  private explain(plan: Plan): Plan {
    const key = groupKeyOf(plan.tenant, plan.group);
    return this.blocks.explain(key, plan, {
      leader: this.isLeaderNow(),
      waitingCreates: this.executor.waitingCreates(key),
      nextCreateAt: this.gate.nextCreateAt(),
      nowMs: this.clock.nowMs(),
    });
  }

  /**
   * Every known group's plan as of its last reconcile, without planning again: the leader plans a
   * group whenever something about it changes (an event, a wake-up), so these are current. A group
   * not reconciled since the start is planned now, and so is every group while this server does
   * not lead (its last plans, from when it led, are out of date). For figures read often
   * (metrics): planning every group on each scrape stalled a server with a 10,000-instance group
   * ~160 ms every scrape (bench B5).
   */
  currentPlans(): Plan[] {
    const config = this.opts.configLoader.getCurrent();
    const leading = this.isLeaderNow();
    return knownGroups(this.store, config).map(({ tenant, group }) => (leading ? this.lastPlans.get(groupKeyOf(tenant, group)) : undefined) ?? this.inputs.computePlan(config, tenant, group));
  }

  /** The last plan applied for a group (for "why blocked"), if any. */
  lastPlan(tenant: string, group: string): Plan | undefined {
    return this.lastPlans.get(groupKeyOf(tenant, group));
  }

  /** Queue and provider-call figures for metrics. */
  stats(): {
    queueDepth: number;
    queueActive: number;
    oldestWaitMs: number;
    runningSinceMs: number[];
    providerWaiting: number;
    providerInFlight: number;
    timers: number;
  } {
    const gate = this.gate.stats();
    return {
      queueDepth: this.queue.depth,
      queueActive: this.queue.active,
      oldestWaitMs: this.queue.oldestWaitMs(),
      runningSinceMs: this.queue.runningSince(),
      providerWaiting: gate.waiting,
      providerInFlight: gate.inFlight,
      timers: this.timers.size,
    };
  }

  /** Effective settings of a group: config, with the size in force (schedules, operator, autoscale, sleep: see sizing.ts). */
  effectiveSettings(config: DroverConfig, tenant: string, group: string): GroupSettings | null {
    const settings = groupSettings(config, tenant, group);
    if (!settings) return null;
    const decision = this.sizer.decide(config, tenant, group);
    return decision && decision.size !== settings.size ? { ...settings, size: decision.size } : settings;
  }

  /** What sets a configured group's size now, and why; null when the group is not configured. */
  sizeDecision(tenant: string, group: string): SizeDecision | null {
    return this.sizer.decide(this.opts.configLoader.getCurrent(), tenant, group);
  }

  /** A tenant's sleep while it lasts, or null when it is awake. */
  tenantSleep(tenant: string): TenantSleep | null {
    return this.sizer.sleepOf(tenant);
  }

  /**
   * Puts a tenant to sleep until `until` (null: until woken): its configured groups' size is 0,
   * reached through the budgets like any scale-down. Audited once per group. Leader only (the
   * write is refused with NotLeaderError elsewhere); the caller checks the tenant and `until`.
   */
  sleepTenant(tenant: string, until: Date | null, actor: string): Promise<SleepChange> {
    return this.sizer.sleep(this.opts.configLoader.getCurrent(), tenant, until, actor);
  }

  /** Wakes a sleeping tenant: its groups go back to the sizes they have awake. */
  wakeTenant(tenant: string, actor: string): Promise<SleepChange> {
    return this.sizer.wake(this.opts.configLoader.getCurrent(), tenant, actor);
  }

  // ---- event intake --------------------------------------------------------------------------

  private enqueueUnsafe(event: ReconcileEvent): void {
    if (this.state === 'stopped') return;
    if (!event || !EVENT_TYPES.includes(event.type)) {
      this.log.warn({ event: describeEventSafe(event) }, 'unknown event type ignored');
      this.safeNotifyError('', event?.instanceId ?? '', `enqueue: unknown event type ${JSON.stringify(event?.type)}`);
      return;
    }
    if (event.type === EventType.InitialReconcile) {
      this.queue.addBarrier('initial', { ...event, type: EventType.InitialReconcile });
      return;
    }
    const routing = routeEvent(event, this.store);
    if (!routing.ok) {
      this.log.warn({ event: describeEvent(event), instanceId: event.instanceId, problem: routing.problem }, 'event refused at intake');
      this.safeNotifyError(routing.group, routing.instanceId, routing.problem);
      return;
    }
    const full = routing.event;
    if (full.preventDuplicate && this.recent.seenRecently(full)) {
      this.log.debug({ event: describeEvent(full), tenant: full.tenant, group: full.groupKey, instanceId: full.instanceId }, 'duplicate event skipped');
      return;
    }
    const coalesce = full.type === EventType.GroupChanged ? 'group' : `${full.type}|${full.instanceId}`;
    this.queue.add(groupKeyOf(full.tenant, full.groupKey), coalesce, full, eventPriority(full));
  }

  private markDirty(tenant: string, group: string, cause: string, priority: Priority): void {
    if (this.state === 'stopped') return;
    this.queue.add(groupKeyOf(tenant, group), 'group', { type: EventType.GroupChanged, tenant, groupKey: group, cause }, priority);
  }

  // ---- handlers ------------------------------------------------------------------------------

  private async handleGroup(key: string, queued: QueuedEvent[]): Promise<void> {
    if (this.halted) return;
    const started = this.clock.nowMs();
    const { tenant, group } = splitGroupKey(key);
    // A group's queue holds only its own events (intake routes them); the barrier has its own handler.
    const events = queued.filter((e): e is GroupEvent => e.type !== EventType.InitialReconcile);
    events.sort((a, b) => eventPriority(a) - eventPriority(b));
    for (const event of events) {
      this.recent.processed(event);
      try {
        await this.facts.record(event);
      } catch (err) {
        handleFailure(this.ctx, tenant, group, event, err);
      }
      if (this.halted) return;
    }
    if (!this.isLeaderNow()) {
      this.opts.observer?.reconciled?.('skipped', this.clock.nowMs() - started);
      this.log.debug({ tenant, group }, 'not the leader; group not reconciled');
      return;
    }
    if (this.deferSilenceWake(key, tenant, group, events)) return;
    try {
      const config = this.opts.configLoader.getCurrent();
      trackRemoval(this.ctx, config, tenant, group, events);
      await this.sizer.beforePass(config, tenant, group, events.length > 0 ? describeEvent(events[0]!) : null);
      if (!this.isLeaderNow() || this.halted) return;
      const planStarted = this.clock.nowMs();
      const plan = this.inputs.computePlan(config, tenant, group);
      trackBrake(this.ctx, plan, events);
      this.executor.apply(plan, events);
      this.firstHealth.planned(tenant, group, this.clock.nowMs() - planStarted);
      this.lastPlans.set(key, plan);
      this.blocks.track(key, plan, this.clock.nowMs());
      this.setWake(key, tenant, group, plan.wakeAt?.getTime() ?? null, plan.silenceWake !== null);
      // Forgetting vanished instances changes what the next plan counts (the health brake counts
      // them as unhealthy in the plan that forgets them): plan again, or a brake they tripped would
      // hold until something else happened in the group.
      if (plan.actions.some((a) => a.kind === 'forget') && plan.summary.disruption.shortCircuited) this.markDirty(tenant, group, 'forgotten', Priority.high);
      this.opts.observer?.reconciled?.('ok', this.clock.nowMs() - started);
    } catch (err) {
      this.opts.observer?.reconciled?.('error', this.clock.nowMs() - started);
      const attempt = Math.max(0, ...events.map((e) => e.attempt ?? 0));
      handleFailure(this.ctx, tenant, group, { type: EventType.GroupChanged, tenant, groupKey: group, cause: 'retry', attempt }, err);
    }
  }

  /** Arms (or clears) the group's wake-up timer; `forSilence`: it is only for a health report going stale. */
  private setWake(key: string, tenant: string, group: string, at: number | null, forSilence: boolean): void {
    if (at === null) this.timers.clear(TimerKey.wake(key));
    else this.timers.set(TimerKey.wake(key), at, { type: EventType.GroupChanged, tenant, groupKey: group, cause: forSilence ? SILENCE_WAKE : 'timer' });
  }

  /**
   * The group's wake-up came for health reports going stale (`Plan.silenceWake`) and nothing else
   * is queued with it: when the store shows that no report has gone stale yet (the agents kept
   * reporting), no plan is needed: a report only moves an instance's health forward, and every
   * other change to the group comes as an event of its own. The wake-up then moves to when the
   * oldest report goes stale, and true is returned. A 10,000-instance group whose agents report
   * every 5 s was otherwise planned (~75 ms) every ~10 s, stalling the agents' reports (bench B5).
   * After a restart the timer's cause is the same but no plan is known yet: it plans.
   */
  private deferSilenceWake(key: string, tenant: string, group: string, events: readonly GroupEvent[]): boolean {
    const last = this.lastPlans.get(key);
    const silence = last?.silenceWake;
    if (!last || !silence || events.length !== 1 || events[0]!.type !== EventType.GroupChanged || events[0]!.cause !== SILENCE_WAKE) return false;
    const now = this.clock.nowMs();
    const otherWakeAt = silence.otherWakeAt?.getTime() ?? null;
    if (otherWakeAt !== null && otherWakeAt <= now) return false;
    const silenceAt = this.inputs.nextSilenceAt(tenant, group, silence.staleAfterMs);
    if (silenceAt === null || silenceAt <= now) return false;
    const forSilence = otherWakeAt === null || silenceAt < otherWakeAt;
    const wakeAt = forSilence ? silenceAt : otherWakeAt;
    this.setWake(key, tenant, group, wakeAt, forSilence);
    this.lastPlans.set(key, { ...last, wakeAt: new Date(wakeAt), silenceWake: forSilence ? silence : null });
    this.log.debug({ tenant, group, wakeAt: new Date(wakeAt).toISOString() }, 'no health report stale yet; plan deferred');
    return true;
  }

  private async handleInitialReconcile(events: ReconcileEvent[]): Promise<void> {
    if (this.halted) return;
    if (!this.isLeaderNow()) {
      this.log.info({}, 'not the leader; initial reconcile skipped');
      return;
    }
    await initialReconcile(this.ctx, events, () => {
      this.observingSince = this.clock.nowMs();
    });
  }

  // ---- collaborators -------------------------------------------------------------------------

  private onConfigChange(next: DroverConfig, prev: DroverConfig): void {
    // A group's configured size counts from when this server loaded it (see GroupSizer).
    const now = this.clock.nowMs();
    for (const { tenant, group } of configuredGroups(next)) {
      if (groupSizing(next, tenant, group)?.size !== groupSizing(prev, tenant, group)?.size) this.configSizeLoadedAt.set(groupKeyOf(tenant, group), now);
    }
    this.gate.configure({
      maxCallsPerSecond: next.provider.maxCallsPerSecond,
      maxConcurrent: next.provider.maxConcurrentCalls,
      maxConcurrentCreates: next.provider.maxConcurrentCreates,
      createGapMs: this.opts.createRateLimitMs ?? next.shard.createRateLimit,
      adaptive: next.provider.adaptiveRate,
    });
    const shardChanged = JSON.stringify(next.shard) !== JSON.stringify(prev.shard);
    const keys = new Map<string, { tenant: string; group: string }>();
    for (const g of [...configuredGroups(prev), ...configuredGroups(next)]) keys.set(groupKeyOf(g.tenant, g.group), g);
    let changed = 0;
    for (const { tenant, group } of keys.values()) {
      // Sizing (min, max, schedules, autoscale) is not part of the settings the planner reads, but decides its size.
      const before = JSON.stringify([groupSettings(prev, tenant, group), groupSizing(prev, tenant, group)]);
      const after = JSON.stringify([groupSettings(next, tenant, group), groupSizing(next, tenant, group)]);
      if (shardChanged || before !== after) {
        changed++;
        this.markDirty(tenant, group, 'config', Priority.normal);
      }
    }
    this.log.info({ changedGroups: changed }, 'config reloaded');
  }

  private isLeaderNow(): boolean {
    if (this.halted) return false;
    try {
      return this.opts.isLeader() === true;
    } catch {
      return false;
    }
  }

  private safeNotifyDrain(instanceId: string, group: string, reason: string, unhealthyAt: Date, deleteAt: Date): void {
    try {
      this.opts.notifyDrain(instanceId, group, reason, unhealthyAt, deleteAt);
    } catch (err) {
      this.log.warn({ instanceId, group, err: errorMessage(err) }, 'notifyDrain threw');
    }
  }

  private safeNotifyError(group: string, instanceId: string, message: string): void {
    try {
      this.opts.notifyError?.(group, instanceId, message);
    } catch (err) {
      this.log.warn({ instanceId, group, err: errorMessage(err) }, 'notifyError threw');
    }
  }
}
