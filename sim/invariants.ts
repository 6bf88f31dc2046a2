/**
 * The invariants the simulator checks, and the bookkeeping they need. Exact definitions (and why
 * each is defined that way) are in sim/README.md.
 *
 * Checks run at three moments:
 * - when something happens: every audit entry (create, drain, delete, forget...), every provider
 *   mutation and every drain notice;
 * - after every step, on the store as it stands (overdue drains, forced expiry);
 * - at the end, after the faults stop (convergence, leaks).
 */
import { moveAllowed } from '../src/store/lifecycle.js';
import type { SimProvider } from '../src/providers/sim/index.js';
import type { AuditEntry, InstanceRecord, InstanceStatus, LocalDb } from '../src/store/index.js';
import type { ModelConfig, ModelGroup } from './config-model.js';
import type { QuantityDraw } from './scenario.js';
import { TAGS, classOf, isHealthLoss, isRotation, isTerminal, isVoluntary } from './vocabulary.js';
import { windowAt } from './windows.js';

export type InvariantId = '1' | '2' | '3' | '4' | '5' | '6' | '7' | '8' | '9' | '10' | '11' | '12' | '13' | '14' | 'lifecycle' | 'config' | 'error';

export const INVARIANT_NAMES: Record<InvariantId, string> = {
  '1': 'invariant 1: our creates never take a group above size + maxSurge',
  '2': 'invariant 2: expiry and drift drain an instance only once its replacement reports healthy',
  '3': 'invariant 3: every drain ends in a delete (ack, deadline or terminal), in time; forced expiry bounds lifetimes',
  '4': 'invariant 4: nothing is created, deleted or drained while not leader',
  '5': 'invariant 5: no leak: every instance the provider holds is known to the store',
  '6': 'invariant 6: after the faults stop, every group is at size, all in service, within the bound',
  '7': 'invariant 7: voluntary disruption started under an active budget never exceeds it',
  '8': 'invariant 8: no health replacement while more than maxUnhealthy instances are unhealthy',
  '9': 'invariant 9: a protected instance is never voluntarily disrupted',
  '10': 'invariant 10: no extension takes a drain past drainStartedAt + maxDrainTimeout (or past forcedAge + drainTimeout)',
  '11': 'invariant 11: a zero-budget window holds every expiry and drift rotation',
  '12': 'invariant 12: a correlated failure is counted together: none of it is replaced before healthSettle, nor past maxUnhealthy with its replaced ones counted',
  '13': 'invariant 13: the size a group is reconciled to is the one in force (schedules, autoscale, sleep), within min..max (0 asleep)',
  '14': 'invariant 14: autoscale changes a size from the one in force, within min..max, keeping its cooldowns and maxStepDown',
  lifecycle: 'lifecycle: an instance only moves forward (creating, running, draining, deleting, deleted)',
  config: 'config: an invalid config is rejected and the one in force stays',
  error: 'error: no unexpected error escapes the reconciler',
};

export interface Violation {
  invariant: InvariantId;
  /** Index of the step during which it was found (-1: start, steps.length: convergence). */
  step: number;
  atMs: number;
  message: string;
}

/** Times when the reconciler could not act: not leader, or not running (crashed, restarting). */
export class Disturbances {
  private readonly spans: Array<{ from: number; to: number }> = [];
  private openSince: number | null = null;

  begin(t: number): void {
    if (this.openSince === null) this.openSince = t;
  }

  end(t: number): void {
    if (this.openSince === null) return;
    // Even an instant one counts: a restart begins again with an InitialReconcile.
    this.spans.push({ from: this.openSince, to: t });
    this.openSince = null;
  }

  get active(): boolean {
    return this.openSince !== null;
  }

  /**
   * The first time at or after `t` when the reconciler could act (Infinity while it still
   * cannot).
   */
  firstClear(t: number): number {
    return this.dueAfter(t, 0);
  }

  /**
   * When the reconciler has had `work` ms in a row in which it could act, from `t` on: something
   * due at `t` that takes up to `work` to get done must be done by then (Infinity while it
   * cannot act). In a row, because a restart or a leadership win begins again with an
   * InitialReconcile, whose list call may take up to a call timeout again.
   */
  dueAfter(t: number, work: number): number {
    let at = t;
    for (const span of this.spans) {
      if (span.to <= at) continue;
      if (span.from > at + work || (work > 0 && span.from === at + work)) break;
      at = span.to;
    }
    if (this.openSince !== null && this.openSince < at + work) return Number.POSITIVE_INFINITY;
    return at + work;
  }
}

/**
 * Provider calls as the world saw them: which did not go as the fleet's provider is configured
 * (slower than its latency, failed, or throttled). Such trouble may legitimately hold the
 * reconciler's decisions back (a barrier's list hanging, a failed check retried); without it,
 * the reconciler needs only the time its configured work takes.
 */
export class CallLog {
  /** Calls in trouble, as [from, to] spans, in the order they ended. */
  private readonly troubled: Array<{ from: number; to: number }> = [];
  private readonly open = new Map<number, { start: number; expectedMs: number }>();
  private next = 0;
  /** Status calls, in the order they began: when, and for which instance. */
  private readonly checks: Array<{ at: number; instance: string }> = [];

  /** A status call begins (after Drover's call rate limit let it through). */
  checked(at: number, instance: string): void {
    this.checks.push({ at, instance });
  }

  /**
   * How many instances had a status call begin in [from, to]. Each is one check Drover may have
   * queued ahead of a due decision (checks coalesce per instance, so a fleet's worth at most).
   */
  instancesCheckedIn(from: number, to: number): number {
    const seen = new Set<string>();
    for (let i = this.checks.length - 1; i >= 0; i--) {
      const c = this.checks[i];
      if (!c || c.at < from) break;
      if (c.at <= to) seen.add(c.instance);
    }
    return seen.size;
  }

  /** A call begins; `expectedMs` is its configured latency. */
  begin(start: number, expectedMs: number): number {
    const id = ++this.next;
    this.open.set(id, { start, expectedMs });
    return id;
  }

  /** A call ends: in trouble if it failed or took longer than configured. */
  end(id: number, at: number, ok: boolean): void {
    const call = this.open.get(id);
    if (!call) return;
    this.open.delete(id);
    if (!ok || at - call.start > call.expectedMs) this.troubled.push({ from: call.start, to: at });
  }

  /** Whether some call was in trouble at a time in [from, to] (one still out past its latency at `now` is). */
  troubleIn(from: number, to: number, now: number): boolean {
    for (const c of this.open.values()) if (now - c.start > c.expectedMs && c.start <= to) return true;
    // Ended in order: once one ended before `from`, so did every earlier one.
    for (let i = this.troubled.length - 1; i >= 0; i--) {
      const t = this.troubled[i];
      if (!t || t.to < from) break;
      if (t.from <= to) return true;
    }
    return false;
  }
}

/** A moment in the run: a time, and the order of events at that time (-1: before any of them). */
export interface Point {
  at: number;
  seq: number;
}

const isBefore = (a: Point, b: Point): boolean => a.at < b.at || (a.at === b.at && a.seq < b.seq);
const latest = (a: Point, b: Point): Point => (isBefore(a, b) ? b : a);
const NEVER: Point = { at: Number.NEGATIVE_INFINITY, seq: -1 };

interface Span {
  from: number;
  to: number;
}

/**
 * What operators did to instances, as the world asked for it (the operator's own view, kept
 * apart from the reconciler's state): protections as spans of time, and the drain requests that
 * stand (whether each was forced).
 */
export class OperatorLog {
  private readonly protections = new Map<string, Span[]>();
  private readonly requests = new Map<string, boolean>();

  private static close(spans: Span[] | undefined, at: number): void {
    for (const s of spans ?? []) if (s.to > at) s.to = Math.max(s.from, at);
  }

  private static open(map: Map<string, Span[]>, id: string, from: number, to: number): void {
    const spans = map.get(id) ?? [];
    OperatorLog.close(spans, from);
    spans.push({ from, to });
    map.set(id, spans);
  }

  /** A protection set (it replaces one in force). */
  protect(id: string, from: number, until: number): void {
    OperatorLog.open(this.protections, id, from, until);
  }

  unprotect(id: string, at: number): void {
    OperatorLog.close(this.protections.get(id), at);
  }

  /** A cancelled rotation or drain: its request is gone (the hold itself pauses a rotation, which still counts). */
  cancel(id: string): void {
    this.requests.delete(id);
  }

  /** A drain request. */
  request(id: string, force: boolean): void {
    this.requests.set(id, force);
  }

  /** A drain request for the instance stands (not cancelled since). */
  requested(id: string): boolean {
    return this.requests.has(id);
  }

  /** The last drain request for the instance was forced (past any budget). */
  forced(id: string): boolean {
    return this.requests.get(id) === true;
  }

  private static inForce(spans: Span[] | undefined, t: number): Span | undefined {
    return spans?.find((s) => s.from <= t && t < s.to);
  }

  protectedAt(id: string, t: number): Span | undefined {
    return OperatorLog.inForce(this.protections.get(id), t);
  }

  /** The latest end of a protection in force at `t` (null: none). */
  protectedUntil(t: number): number | null {
    let best: number | null = null;
    for (const spans of this.protections.values()) {
      for (const s of spans) if (s.from <= t && t < s.to && (best === null || s.to > best)) best = s.to;
    }
    return best;
  }

  /** Instances protected at `t`. */
  protectedIds(t: number): string[] {
    return [...this.protections.keys()].filter((id) => this.protectedAt(id, t) !== undefined);
  }
}

/** One instance of a correlated failure: whether it served when it failed, and until when it stays failed. */
export interface FailedMember {
  id: string;
  /** It served when it failed (the world's agent was up, the store had it running, fresh, not judged): its failure began then. */
  clean: boolean;
  until: number;
}

/** Instances that failed in one instant (a freeze, a partition), as the world made them fail. */
export interface FailureBatch {
  kind: 'freeze' | 'partition';
  tenant: string;
  group: string;
  at: number;
  members: Map<string, FailedMember>;
}

/**
 * The correlated failures the world made (its own record: which instances, when, until when),
 * for invariant 12.
 */
export class Failures {
  private readonly byInstance = new Map<string, FailureBatch[]>();
  /** When each frozen instance last came back (running at the provider again). */
  private readonly resumed = new Map<string, number>();

  /** A frozen instance came back: the provider says running again (its agent reports from its next round). */
  resume(id: string, at: number): void {
    this.resumed.set(id, at);
    this.end(id, at);
  }

  /** When the instance last came back from a freeze (undefined: never frozen, or never back). */
  resumedAt(id: string): number | undefined {
    return this.resumed.get(id);
  }

  add(batch: FailureBatch): void {
    for (const id of batch.members.keys()) {
      const list = this.byInstance.get(id) ?? [];
      list.push(batch);
      this.byInstance.set(id, list);
    }
  }

  /** The instance's failure (in every batch it is in) ended at `at`: it came back, or died otherwise. */
  end(id: string, at: number): void {
    for (const batch of this.byInstance.get(id) ?? []) {
      const m = batch.members.get(id);
      if (m && m.until > at) m.until = Math.max(batch.at, at);
    }
  }

  /** The latest batch the instance is failed in at `t`, with its membership (null: none). */
  failedAt(id: string, t: number): { batch: FailureBatch; member: FailedMember } | null {
    const list = this.byInstance.get(id) ?? [];
    for (let i = list.length - 1; i >= 0; i--) {
      const batch = list[i];
      const member = batch?.members.get(id);
      if (batch && member && batch.at <= t && t < member.until) return { batch, member };
    }
    return null;
  }
}

/**
 * A count, or a percentage of `size` rounded up (README.md, "Controlling disruption": maxUnhealthy
 * and budgets). The checker's own arithmetic.
 */
export function resolveQuantity(q: QuantityDraw, size: number): number {
  return 'count' in q ? q.count : Math.ceil((size * q.percent) / 100);
}

/** A budget's max: as resolveQuantity, except that a percentage of a group scaled to 0 is taken of 1 (README.md). */
export function resolveMax(q: QuantityDraw, size: number): number {
  return resolveQuantity(q, 'percent' in q ? Math.max(size, 1) : size);
}

/** An instance disrupted for a voluntary reason, and since when (invariant 7). */
interface Disruption {
  id: string;
  reason: string;
  start: Point;
  /** An operator's drain forced past the budgets: exempt. */
  forced: boolean;
  how: string;
}

/** A replacement that may take over: running, not judged unhealthy, and reported within the staleness window. */
function replacementReady(r: InstanceRecord, config: ModelConfig, now: number): boolean {
  const stale = staleAfter(config);
  return r.status === 'running' && r.healthAt !== null && !judged(r) && r.healthAt.getTime() + stale > now;
}

/**
 * Judged unhealthy and not heard from since (README.md: an instance that reports again has
 * recovered; a judgement it reported after is over, though the store keeps its time).
 */
export function judged(r: Pick<InstanceRecord, 'unhealthyAt' | 'healthAt'>): boolean {
  return r.unhealthyAt !== null && !(r.healthAt !== null && r.healthAt.getTime() > r.unhealthyAt.getTime());
}

/** How long an instance may go without reporting health (healthCheckInterval × missedHealthThreshold). */
function staleAfter(config: ModelConfig): number {
  return config.shard.healthCheckIntervalMs * config.shard.missedHealthThreshold;
}

/** What the checker sees of the world. */
export interface WorldView {
  now(): number;
  db(): LocalDb | null;
  readonly provider: SimProvider;
  /** The config in force, from the world's own model of it. */
  config(): ModelConfig;
  /** The leader flag and the generation of the running reconciler (null when none runs). */
  leader(): boolean;
  runningGeneration(): number | null;
  /**
   * The latest time the running reconciler may have begun its health grace (README.md: after a
   * start or a leadership win, silence counts only after one full health threshold): from what
   * the world did, not from the reconciler.
   */
  graceSince(): number;
  readonly disturbances: Disturbances;
  everRemoved(tenant: string, group: string): boolean;
  /**
   * Processing slack: how late a due action may legitimately be decided while provider calls are
   * in trouble (a barrier's list hanging to its timeout, status checks to theirs)...
   */
  slackMs(): number;
  /** ...and while none is: the time the reconciler's configured work takes (a barrier's list). */
  quietSlackMs(): number;
  /** The spacing Drover's own call rate limit puts between two provider calls (0: no limit). */
  callSpacingMs(): number;
  step(): number;
  /** Every group of the fleet (configured or not). */
  groups(): ReadonlyArray<{ tenant: string; group: string }>;
  /** What operators did (protection, holds, drain requests), as the world asked for it. */
  readonly operatorLog?: OperatorLog;
  /** Provider calls, and which were in trouble. */
  readonly calls?: CallLog;
  /** The correlated failures the world made (invariant 12). */
  readonly failures?: Failures;
  /** The size the running reconciler reconciles a configured group to now (null: none runs). */
  plannedSize?(tenant: string, group: string): number | null;
}

interface DrainNotice {
  reason: string;
  deleteAt: number;
  at: number;
}

/**
 * Whether an audit entry may record this change of status: the lifecycle's table of moves and
 * the audit actions that record each (src/store/lifecycle.ts) is a declaration the checker shares,
 * as it shares the vocabulary of reasons; an entry that changes nothing is always allowed.
 */
function allowedChange(prev: InstanceStatus | 'none', status: InstanceStatus, action: AuditEntry['action']): boolean {
  if (prev === status) return true;
  return moveAllowed(prev === 'none' ? null : prev, status, action);
}

const short = (id: string | null): string => (id ? id.slice(0, 10) : '-');

/**
 * The instances of a group the health brake counts as unhealthy, by the rules README.md states
 * for `maxUnhealthy` (written out here, not taken from the plan): being deleted for its health;
 * gone or stopped at the provider (unless it reported since); draining for health; and, unless noticed
 * or past forced expiry, judged unhealthy, silent for the staleness threshold, or never reported
 * within the startup timeout (silence before `graceSince` does not count).
 */
export function unhealthyInstances(records: readonly InstanceRecord[], settings: ModelGroup, config: ModelConfig, now: number, graceSince: number): string[] {
  const staleMs = staleAfter(config);
  const out: string[] = [];
  for (const i of records) {
    const observed = i.providerStatus;
    const why = ((): string | null => {
      if (i.status === 'deleting') return isHealthLoss(i.deleteReason) || i.drainReason === 'unhealthy' ? `deleting (${i.deleteReason ?? ''})` : null;
      if (i.status === 'creating') return null;
      if (observed === 'notFound') return 'gone';
      // A report after the provider's answer: it runs again (the answer is out of date).
      const reportedSince = i.healthAt !== null && i.providerCheckedAt !== null && i.healthAt.getTime() > i.providerCheckedAt.getTime();
      if (observed !== null && isTerminal(observed) && !reportedSince) return observed;
      if (i.status === 'draining') return i.drainReason === 'unhealthy' ? 'draining (unhealthy)' : null;
      if (i.noticeDeadline) return null;
      if (settings.forcedAgeMs > 0 && i.createdAt.getTime() + settings.forcedAgeMs <= now) return null;
      if (judged(i)) return 'judged unhealthy';
      if (i.healthAt === null) {
        const startedAt = i.confirmedAt?.getTime() ?? i.createdAt.getTime();
        const deadline = startedAt < graceSince ? Math.max(startedAt + settings.startupTimeoutMs, graceSince + staleMs) : startedAt + settings.startupTimeoutMs;
        return deadline <= now ? 'never reported' : null;
      }
      return Math.max(i.healthAt.getTime(), graceSince) + staleMs <= now ? 'silent' : null;
    })();
    if (why) out.push(`${short(i.id)} ${why}`);
  }
  return out;
}

/** The settings of a configured group in the config in force (null: not configured). */
function settingsOf(config: ModelConfig, tenant: string, group: string): ModelGroup | null {
  return config.group(tenant, group);
}

export class Invariants {
  readonly violations: Violation[] = [];
  private readonly status = new Map<string, InstanceStatus>();
  private readonly drains = new Map<string, DrainNotice>();
  /** Instances the world sent a drain ack for (agent or operator). */
  readonly acked = new Set<string>();
  /** Orders events that happen at the same simulated time (audit entries, config changes). */
  private seq = 0;
  /** When each rotation replacement's create was recorded. */
  private readonly createdAt = new Map<string, Point>();
  /** Each instance's latest drain: its reason, when the disruption began, forced or not, and its first deadline. */
  private readonly drainsStarted = new Map<string, { reason: string; start: Point; forced: boolean; deadline: number | null }>();
  /** Per group and budget index: since when the budget is in force with its current spec and resolved max. */
  private readonly budgetSince = new Map<string, { key: string; since: Point }>();
  /** Per group: the records the reconciler read for the plan it is applying, and the instant deletes that plan made. */
  private readonly planInputs = new Map<string, { at: number; records: readonly InstanceRecord[]; instants: Disruption[] }>();
  /** How many health actions invariant 8 judged (on a plan's input, with a brake configured). */
  brakeChecks = 0;
  /** How many health actions on an instance of a correlated failure invariant 12 judged. */
  correlatedChecks = 0;
  /** When each instance was last replaced for health (a health action, as invariants 8 and 12 see them). */
  private readonly healthActed = new Map<string, number>();

  constructor(private readonly w: WorldView) {}

  private point(): Point {
    return { at: this.w.now(), seq: ++this.seq };
  }

  /**
   * How late something due at `at` may be decided: the quiet slack, unless a provider call was in
   * trouble (slow, failed, throttled) from a full slack before it until the quiet slack after it,
   * which may have held the decision back (sim/README.md, invariant 3). Trouble that begins later
   * excuses nothing: by then the decision was already late. Either way, status checks begun since
   * `at` each took a slot of Drover's call rate limit that the decision may have waited behind (a
   * group records its facts, each a status call, before it plans).
   */
  slackAfter(at: number): number {
    const full = this.w.slackMs();
    const quiet = Math.min(full, this.w.quietSlackMs());
    const now = this.w.now();
    const calls = this.w.calls;
    const base = calls && !calls.troubleIn(at - full, at + quiet, now) ? quiet : full;
    return base + (calls ? calls.instancesCheckedIn(at, now) * this.w.callSpacingMs() : 0);
  }

  report(invariant: InvariantId, message: string): void {
    this.violations.push({ invariant, step: this.w.step(), atMs: this.w.now(), message });
  }

  // ---- event hooks -----------------------------------------------------------------------

  /** Every provider mutation, at the moment it is called (invariants 1 and 4). */
  onMutation(generation: number, op: 'create' | 'delete' | 'setTags', target: string): void {
    const running = this.w.runningGeneration();
    if (!this.w.leader() || running !== generation) {
      const who = running === generation ? 'while not leader' : `by reconciler #${generation} after it crashed (#${running ?? 'none'} runs)`;
      this.report('4', `provider ${op} of ${target} called ${who}`);
    }
    if (op === 'create') {
      const record = this.w.db()?.getInstance(target) ?? null;
      if (!record || record.status !== 'creating') {
        this.report('1', `provider create for ${target}, which the store holds as ${record ? record.status : 'unknown'} (not a recorded create)`);
      }
    }
  }

  /** Every drain notice (invariant 4). */
  onDrainNotice(generation: number, instanceId: string, reason: string, deleteAt: Date): void {
    const running = this.w.runningGeneration();
    if (!this.w.leader() || running !== generation) {
      this.report('4', `drain notice for ${instanceId} (${reason}) sent ${running === generation ? 'while not leader' : `by crashed reconciler #${generation}`}`);
    }
    this.drains.set(instanceId, { reason, deleteAt: deleteAt.getTime(), at: this.w.now() });
  }

  /**
   * The reconciler read a group's records to plan it (its plan's input): what the health brake
   * is judged on. Called from the reconciler's store; the plan is applied right after.
   */
  onPlanInput(tenant: string, group: string, records: readonly InstanceRecord[]): void {
    this.planInputs.set(`${tenant}/${group}`, { at: this.w.now(), records, instants: [] });
  }

  /**
   * The world made instances fail together: `ids` (each with whether its agent was up, by the
   * world), failed until `until`. A member served when it failed if, besides, the store had it
   * running, reported within the staleness window, not judged unhealthy since its last report,
   * not stopped at the provider since it, not noticed (README.md's meaning of unhealthy, the
   * checker's own reading): its failure, for the reconciler, began then.
   */
  onCorrelatedFailure(kind: FailureBatch['kind'], tenant: string, group: string, members: ReadonlyArray<{ id: string; up: boolean; until: number }>): FailureBatch | null {
    const db = this.w.db();
    const failures = this.w.failures;
    if (!db || !failures || members.length === 0) return null;
    const now = this.w.now();
    const stale = staleAfter(this.w.config());
    const batch: FailureBatch = { kind, tenant, group, at: now, members: new Map() };
    for (const m of members) {
      const r = db.getInstance(m.id);
      const health = r?.healthAt?.getTime() ?? null;
      const serving =
        r !== null &&
        r.status === 'running' &&
        health !== null &&
        health + stale > now &&
        !judged(r) &&
        !(r.providerStatus !== null && isTerminal(r.providerStatus) && !(r.providerCheckedAt !== null && health > r.providerCheckedAt.getTime())) &&
        r.noticeDeadline === null;
      batch.members.set(m.id, { id: m.id, clean: m.up && serving, until: m.until });
    }
    failures.add(batch);
    return batch;
  }

  /**
   * A config was applied (and at the start). A budget is in force from then on with its spec and
   * its max resolved against the group's size; when either changes, it starts afresh: what was
   * disrupted before is not held against the new one (invariant 7).
   */
  onConfigApplied(): void {
    const point = this.point();
    const config = this.w.config();
    for (const g of this.w.groups()) {
      const settings = settingsOf(config, g.tenant, g.group);
      const prefix = `${g.tenant}/${g.group}#`;
      const keep = new Set<string>();
      for (const b of settings?.budgets ?? []) {
        const k = `${prefix}${b.index}`;
        keep.add(k);
        const key = JSON.stringify([b.max, b.reasons, b.window, resolveMax(b.max, settings?.size ?? 0)]);
        if (this.budgetSince.get(k)?.key !== key) this.budgetSince.set(k, { key, since: point });
      }
      for (const k of [...this.budgetSince.keys()]) if (k.startsWith(prefix) && !keep.has(k)) this.budgetSince.delete(k);
    }
  }

  /** An autoscaled group's size as its audited decisions set it, and when it last went up and changed. */
  private readonly autoscaledSizes = new Map<string, { size: number; at: number; lastUp: number | null; lastChange: number }>();

  /** The size the last audited autoscale decision of a group set (null: none yet). */
  autoscaled(tenant: string, group: string): { size: number | null; at: number | null } {
    const a = this.autoscaledSizes.get(`${tenant}/${group}`);
    return a ? { size: a.size, at: a.at } : { size: null, at: null };
  }

  // ---- invariant 14: autoscale ---------------------------------------------------------------

  /**
   * An autoscale decision that changed a size (`scale`, reason `autoscale`, "size A -> B: ..."):
   * from the size in force, to a size within min..max; a scale-up not within scaleUpCooldown of
   * the previous one; a scale-down not within scaleDownCooldown of the previous change, by at
   * most maxStepDown (a count, or that share of the size rounded up; at least 1).
   */
  private onAutoscale(entry: AuditEntry): void {
    const { tenant, group } = entry;
    const now = this.w.now();
    const match = /^size (\d+) -> (\d+):/.exec(entry.detail ?? '');
    const settings = settingsOf(this.w.config(), tenant, group);
    const spec = settings?.autoscale;
    if (!match || !settings || !spec) {
      this.report('14', `${tenant}/${group}: an autoscale decision the checker cannot read, or for a group without autoscale: ${entry.detail ?? ''}`);
      return;
    }
    const from = Number(match[1]);
    const to = Number(match[2]);
    const key = `${tenant}/${group}`;
    const was = this.autoscaledSizes.get(key);
    const problems: string[] = [];
    if (from !== settings.size) problems.push(`from ${from}, but the size in force was ${settings.size}`);
    if (to < settings.min || to > settings.max) problems.push(`to ${to}, outside min ${settings.min}..max ${settings.max}`);
    if (to > from && was?.lastUp != null && now - was.lastUp < spec.scaleUpCooldownMs) {
      problems.push(`up ${Math.round((now - was.lastUp) / 1000)}s after the previous scale-up, within scaleUpCooldown ${spec.scaleUpCooldownMs / 1000}s`);
    }
    if (to < from) {
      if (was && now - was.lastChange < spec.scaleDownCooldownMs) problems.push(`down ${Math.round((now - was.lastChange) / 1000)}s after the previous change, within scaleDownCooldown ${spec.scaleDownCooldownMs / 1000}s`);
      const step = Math.max(1, resolveQuantity(spec.maxStepDown, from));
      if (from - to > step) problems.push(`down by ${from - to}, more than maxStepDown ${step}`);
    }
    if (problems.length > 0) this.report('14', `${tenant}/${group}: autoscale ${from} -> ${to}: ${problems.join('; ')}`);
    this.autoscaledSizes.set(key, { size: to, at: now, lastUp: to > from ? now : (was?.lastUp ?? null), lastChange: now });
  }

  /** Every audit entry, inside the transaction that wrote it: the record is already updated. */
  onAudit(entry: AuditEntry): void {
    if (entry.instanceId === null && entry.action === 'scale' && entry.reason === 'autoscale') this.onAutoscale(entry);
    const db = this.w.db();
    if (!db || !entry.instanceId) return;
    const id = entry.instanceId;
    const record = db.getInstance(id);
    if (!record) return;
    const point = this.point();
    const prev = this.status.get(id) ?? 'none';
    // Provider sync writes the audit of an adopted create just before the record turns running.
    const status = entry.action === 'adopt' && record.status === 'creating' ? 'running' : record.status;
    if (entry.action === 'drainCancelled' && prev === 'draining') {
      // An operator may cancel a voluntary rotation's drain: it ends there, the instance serves again.
      const reason = this.drains.get(id)?.reason ?? entry.reason;
      if (!isRotation(reason)) this.report('3', `${id}'s drain (${reason}) was cancelled; only operator, expiry and drift drains may be`);
      this.drains.delete(id);
      this.status.set(id, status);
      return;
    }
    if (!allowedChange(prev, status, entry.action)) {
      this.report(prev === 'draining' ? '3' : 'lifecycle', `${id} went from ${prev} to ${status} (${entry.action} ${entry.reason})`);
    }
    this.status.set(id, status);
    switch (entry.action) {
      case 'create':
        this.checkSurge(record);
        this.createdAt.set(id, point);
        if (record.replaces && isRotation(entry.reason)) {
          this.checkProtected(record.replaces, `a ${entry.reason} rotation (replacement ${short(id)} created)`);
          this.checkBudgets(record.tenant, record.group, `${short(id)} created for the ${entry.reason} rotation of ${short(record.replaces)}`);
        }
        break;
      case 'drain':
        if (record.status !== 'draining') {
          // Provider sync resumes a drain from the provider's tags, writing this entry before the row.
          queueMicrotask(() => {
            const now = this.w.db()?.getInstance(id);
            if (now?.status !== 'draining') return;
            this.status.set(id, 'draining');
            this.drainStarted(now, entry.reason, point, 'resumed from tags');
          });
          break;
        }
        if (prev === 'draining') this.report('lifecycle', `${id} drained again (${entry.reason}) while draining for ${this.drains.get(id)?.reason ?? '?'}`);
        if (isRotation(entry.reason)) this.checkReplacement(record, entry.reason, 'drained');
        this.drainStarted(record, entry.reason, point, 'drained');
        break;
      case 'cancel':
        if (isVoluntary(entry.reason)) this.checkProtected(id, `its create cancelled for ${entry.reason}`);
        break;
      case 'drainExtended':
        // Provider sync writes this audit before it updates the row: look once the write is done.
        queueMicrotask(() => {
          const now = this.w.db()?.getInstance(id);
          if (now) this.checkExtension(now);
        });
        break;
      case 'delete':
        if (isRotation(entry.reason)) this.checkReplacement(record, entry.reason, 'deleted');
        if (prev === 'draining') this.checkDrainEnd(record, entry.reason);
        else if (entry.reason === 'drainAcked' || entry.reason === 'drainDeadline') {
          this.report('3', `${id} deleted for ${entry.reason} although it was ${prev}, not draining`);
        }
        this.checkTimely(record, prev);
        if (prev !== 'draining' && isVoluntary(entry.reason)) this.instantDelete(record, entry.reason, point);
        // A health action on a serving instance (a draining one stopped at the provider is leaving anyway).
        if (prev !== 'draining' && classOf(entry.reason).healthAction) this.healthAction(record, `delete (${entry.reason})`);
        break;
      case 'vanished':
      case 'deleted': {
        const held = this.w.provider.find(id);
        if (held) this.report('5', `${id} marked ${entry.action} while the provider still holds it as ${held.providerId} (${held.status})`);
        if (entry.action === 'vanished') this.checkTimely(record, prev);
        break;
      }
      default:
        break;
    }
  }

  // ---- invariants 7 to 11: budgets, the health brake, protection, drain caps ------------------

  /** A drain began (the record is draining): disruption bookkeeping, protection, budgets, brake. */
  private drainStarted(record: InstanceRecord, reason: string, point: Point, what: string): void {
    let start = point;
    let forced = reason === 'operator' && (this.w.operatorLog?.forced(record.id) ?? false);
    const db = this.w.db();
    if (db && isVoluntary(reason)) {
      // The drain that ends a rotation continues its disruption (same reason): it began with the replacement.
      const waiting = this.waitingFor(db.liveInstances(record.tenant, record.group), record.id, point.at);
      if (waiting && waiting.reason === reason) {
        start = waiting.start;
        forced = waiting.forced;
      }
    }
    this.drainsStarted.set(record.id, { reason, start, forced, deadline: record.drainDeadline?.getTime() ?? null });
    if (isVoluntary(reason)) {
      this.checkProtected(record.id, `${what} for ${reason}`);
      this.checkBudgets(record.tenant, record.group, `${short(record.id)} ${what} for ${reason}`);
    }
    if (classOf(reason).healthAction && what === 'drained') this.healthAction(record, `drain (${reason})`);
  }

  /**
   * A delete for a voluntary reason of an instance that was not draining (drain timeout 0): a
   * disruption that ends at once. Unless it ends a rotation, it counts against the budgets with
   * the plan that made it.
   */
  private instantDelete(record: InstanceRecord, reason: string, point: Point): void {
    this.checkProtected(record.id, `deleted for ${reason}`);
    const db = this.w.db();
    if (!db) return;
    const waiting = this.waitingFor(db.liveInstances(record.tenant, record.group), record.id, point.at);
    if (waiting && waiting.reason === reason) return;
    const input = this.planInputs.get(`${record.tenant}/${record.group}`);
    const forced = reason === 'operator' && (this.w.operatorLog?.forced(record.id) ?? false);
    if (input && input.at === point.at) input.instants.push({ id: record.id, reason, start: point, forced, how: 'deleted at once' });
    this.checkBudgets(record.tenant, record.group, `${short(record.id)} deleted at once for ${reason}`);
  }

  /** Invariant 9: no voluntary disruption of an instance while its protection is in force. */
  private checkProtected(id: string, what: string): void {
    const span = this.w.operatorLog?.protectedAt(id, this.w.now());
    if (span) this.report('9', `${id}: ${what} while protected (from ${new Date(span.from).toISOString()} until ${new Date(span.to).toISOString()})`);
  }

  /**
   * A running instance waiting for its rotation's replacement: a replacement (`replaces` is it,
   * created for a rotation) is being created or runs (for an operator's rotation, while its
   * request stands). A protection or a hold pauses the rotation but does not end it: it counts
   * while its replacement lives, and its disruption began with the replacement's create (so what
   * the budget lets in during the pause must leave room for it). With `untilReady`, only while
   * the replacement is not yet ready to take over: a target whose drain waits for the budget with
   * its replacement ready is not disrupted (README.md: "waiting for their replacement to become
   * healthy"); when it drains, the drain continues the rotation from its start.
   */
  private waitingFor(records: readonly InstanceRecord[], id: string, now: number, untilReady = false): Disruption | null {
    const log = this.w.operatorLog;
    const r = records.find((i) => i.replaces === id && (i.status === 'creating' || i.status === 'running') && isRotation(i.createReason));
    if (!r) return null;
    // An operator's rotation ends with its request: a cancel leaves the replacement a plain member.
    if (r.createReason === 'operator' && log && !log.requested(id)) return null;
    if (untilReady && replacementReady(r, this.w.config(), now)) return null;
    return {
      id,
      reason: r.createReason,
      start: this.createdAt.get(r.id) ?? { at: r.createdAt.getTime(), seq: -1 },
      forced: r.createReason === 'operator' && (log?.forced(id) ?? false),
      how: `waiting for ${short(r.id)}`,
    };
  }

  /** The group's instances disrupted now for a voluntary reason: draining for it, or waiting for a rotation's replacement. */
  private disruptions(records: readonly InstanceRecord[], now: number): Disruption[] {
    const out: Disruption[] = [];
    for (const x of records) {
      if (x.status === 'draining') {
        const reason = x.drainReason ?? '';
        if (!isVoluntary(reason)) continue;
        const started = this.drainsStarted.get(x.id);
        const known = started?.reason === reason ? started : undefined;
        out.push({ id: x.id, reason, start: known?.start ?? { at: x.drainStartedAt?.getTime() ?? now, seq: -1 }, forced: known?.forced ?? false, how: 'draining' });
      } else if (x.status === 'running') {
        const waiting = this.waitingFor(records, x.id, now, true);
        if (waiting) out.push(waiting);
      }
    }
    return out;
  }

  /**
   * Invariants 7 and 11. For every budget of the group active now (no window, or its window
   * open now, by the checker's own windows), the instances disrupted for its reasons whose disruption began
   * while it was in force (since its window opened, and since its spec and resolved max last
   * changed), forced operator drains aside, plus the instant deletes of the plan being applied,
   * are at most its max resolved against the group's size.
   */
  checkBudgets(tenant: string, group: string, trigger: string): void {
    const db = this.w.db();
    if (!db) return;
    const settings = settingsOf(this.w.config(), tenant, group);
    if (!settings || settings.budgets.length === 0) return;
    const now = this.w.now();
    const ongoing = this.disruptions(db.liveInstances(tenant, group), now);
    const input = this.planInputs.get(`${tenant}/${group}`);
    if (input && input.at === now) ongoing.push(...input.instants);
    for (const b of settings.budgets) {
      const open = b.window ? windowAt(b.window, now) : null;
      if (b.window && !open) continue;
      const max = resolveMax(b.max, settings.size);
      // A size that changed without a config change (a schedule, a sleep, a wake) resolves the
      // budget afresh from when it changed, as a config change does (onConfigApplied).
      const k = `${tenant}/${group}#${b.index}`;
      const key = JSON.stringify([b.max, b.reasons, b.window, max]);
      const was = this.budgetSince.get(k);
      if (was && was.key !== key) this.budgetSince.set(k, { key, since: latest(was.since, { at: settings.sizeSince, seq: -1 }) });
      const since = this.budgetSince.get(k)?.since ?? NEVER;
      const from = open ? latest(since, { at: open.start, seq: -1 }) : since;
      const counted = ongoing.filter((d) => (b.reasons as readonly string[]).includes(d.reason) && !d.forced && !isBefore(d.start, from));
      if (counted.length <= max) continue;
      const zeroWindow = max === 0 && b.window !== null && counted.some((d) => d.reason === 'expiry' || d.reason === 'drift');
      const window = b.window ? `, window ${b.window.schedule} for ${b.window.durationMs / 60_000}m (${b.window.timezone}) open since ${open ? new Date(open.start).toISOString() : '?'}` : '';
      const list = counted.map((d) => `${short(d.id)} ${d.reason} ${d.how} since ${new Date(d.start.at).toISOString()}`).join('; ');
      this.report(
        zeroWindow ? '11' : '7',
        `${tenant}/${group}: ${trigger}: ${counted.length} disrupted under budgets[${b.index}] (max ${'count' in b.max ? b.max.count : `${b.max.percent}%`} = ${max} of size ${settings.size}, ${b.reasons.join(',')}${window}; in force since ${Number.isFinite(from.at) ? new Date(from.at).toISOString() : 'the start'}): ${list}`,
      );
    }
  }

  /** A health action (a decision about a serving instance): invariants 8 and 12, then remembered. */
  private healthAction(record: InstanceRecord, what: string): void {
    this.checkBrake(record, what);
    this.checkCorrelated(record, what);
    this.healthActed.set(record.id, this.w.now());
  }

  /**
   * Invariant 12: the brake's purpose, for instances that fail together (a freeze or a partition,
   * the world's own record). README.md: with maxUnhealthy set, an instance judged unhealthy is
   * acted on only healthSettle after it was judged, and the brake counts those recently replaced
   * for health (at least unhealthyWindow after they left). So, for a health action on an
   * instance X while its correlated failure lasts:
   * - settle: if X was serving when it failed (at T), it was judged at T or later, so the action
   *   comes at T + healthSettle or later. Failures of one instant are all counted by then (a
   *   silent instance counts once its last report, at or before T, is the staleness threshold old,
   *   and the threshold is at most healthSettle), so more than maxUnhealthy of them are held;
   * - count: the instances the checker counts unhealthy in the plan's input (as invariant 8), plus
   *   those of X's failure already replaced for health, since T and less than unhealthyWindow ago,
   *   and no longer live, must not exceed maxUnhealthy: a brake that forgets the ones it replaced
   *   would replace a correlated failure bit by bit.
   * Together: a correlated failure of more than maxUnhealthy serving instances has none of them
   * replaced while it lasts (unless its count falls for another reason: one scaled down, noticed,
   * past forced expiry), and never more than maxUnhealthy of them within the window.
   */
  private checkCorrelated(record: InstanceRecord, what: string): void {
    const now = this.w.now();
    const failed = this.w.failures?.failedAt(record.id, now);
    if (!failed) return;
    const config = this.w.config();
    const settings = settingsOf(config, record.tenant, record.group);
    const brake = settings?.maxUnhealthy ?? null;
    if (!settings || brake === null) return;
    this.correlatedChecks++;
    const { batch, member } = failed;
    const others = batch.members.size - 1;
    const desc = `${batch.kind} of ${batch.members.size} at ${new Date(batch.at).toISOString()}`;
    if (member.clean && now < batch.at + settings.healthSettleMs) {
      this.report(
        '12',
        `${record.tenant}/${record.group}: ${what} of ${record.id} ${Math.round((now - batch.at) / 1000)}s after it failed with ${others} other(s) (${desc}), before healthSettle (${settings.healthSettleMs / 1000}s) from its failure`,
      );
    }
    const input = this.planInputs.get(`${record.tenant}/${record.group}`);
    if (!input || input.at !== now) return;
    const max = resolveQuantity(brake, settings.size);
    const unhealthy = unhealthyInstances(input.records, settings, config, now, this.w.graceSince());
    const live = new Set(input.records.map((r) => r.id));
    const replaced = [...batch.members.keys()].filter((id) => {
      const at = this.healthActed.get(id);
      return at !== undefined && at >= batch.at && at + settings.unhealthyWindowMs > now && !live.has(id);
    });
    if (unhealthy.length + replaced.length > max) {
      this.report(
        '12',
        `${record.tenant}/${record.group}: ${what} of ${record.id} (${desc}) while ${unhealthy.length} were unhealthy and ${replaced.length} of its failure replaced for health within unhealthyWindow (${settings.unhealthyWindowMs / 1000}s), more than maxUnhealthy ${max}: ${[...unhealthy, ...replaced.map((id) => `${short(id)} replaced`)].join(', ')}`,
      );
    }
  }

  /**
   * Invariant 8: a health action (drain for unhealthy, delete of a running instance for
   * terminated or startupTimeout) is judged on the records its plan read: with more than
   * maxUnhealthy of them unhealthy, it must not happen.
   */
  private checkBrake(record: InstanceRecord, what: string): void {
    const config = this.w.config();
    const settings = settingsOf(config, record.tenant, record.group);
    const brake = settings?.maxUnhealthy ?? null;
    if (!settings || brake === null) return;
    const now = this.w.now();
    const input = this.planInputs.get(`${record.tenant}/${record.group}`);
    if (!input || input.at !== now) return;
    this.brakeChecks++;
    const max = resolveQuantity(brake, settings.size);
    const grace = this.w.graceSince();
    const unhealthy = unhealthyInstances(input.records, settings, config, now, grace);
    if (unhealthy.length > max) {
      this.report('8', `${record.tenant}/${record.group}: ${what} of ${record.id} while ${unhealthy.length} instances were unhealthy, more than maxUnhealthy ${max}: ${unhealthy.join(', ')}`);
    }
  }

  // ---- invariant 1: surge ------------------------------------------------------------------

  private checkSurge(record: InstanceRecord): void {
    const db = this.w.db();
    if (!db) return;
    const { tenant, group } = record;
    const live = new Map<string, string>();
    for (const i of db.liveInstances(tenant, group)) live.set(i.id, `${i.status}${i.replaces ? ` replacing ${short(i.replaces)}` : ''}`);
    for (const p of this.w.provider.instances()) {
      if (p.tags[TAGS.tenant] !== tenant || p.tags[TAGS.group] !== group) continue;
      const id = p.tags[TAGS.instanceId] ?? p.providerId;
      live.set(id, `${live.get(id) ?? `provider-only, store ${db.getInstance(id)?.status ?? 'unknown'}`} at provider ${p.status}`);
    }
    const settings = settingsOf(this.w.config(), tenant, group);
    const cap = settings ? settings.size + settings.maxSurge : 0;
    if (live.size > cap) {
      const others = [...live].filter(([id]) => id !== record.id).map(([id, what]) => `${short(id)} ${what}`);
      this.report('1', `create of ${record.id} (${record.createReason}) in ${tenant}/${group} with ${live.size - 1} instances already live, cap size + maxSurge = ${cap}: ${others.join('; ')}`);
    }
  }

  // ---- invariant 2: replacement first ------------------------------------------------------

  private checkReplacement(old: InstanceRecord, reason: string, what: string): void {
    const db = this.w.db();
    if (!db) return;
    const config = this.w.config();
    const now = this.w.now();
    const replacements = db.liveInstances(old.tenant, old.group).filter((i) => i.replaces === old.id);
    const ok = replacements.some((r) => replacementReady(r, config, now));
    if (!ok) {
      const seen = replacements.map((r) => `${r.id} ${r.status} health ${r.healthAt ? `${Math.round((now - r.healthAt.getTime()) / 1000)}s ago` : 'never'}`);
      this.report('2', `${old.id} ${what} for ${reason} without a healthy replacement (${seen.length > 0 ? seen.join(', ') : 'none'})`);
    }
  }

  // ---- invariant 3: drains end, in time ----------------------------------------------------

  /** An operator's extension: the new deadline is the one notified from now on, within its caps. */
  private checkExtension(record: InstanceRecord): void {
    const notice = this.drains.get(record.id);
    const deadline = record.drainDeadline?.getTime() ?? null;
    if (notice && deadline !== null) notice.deleteAt = deadline;
    if (record.noticeDeadline && deadline !== null && deadline > record.noticeDeadline.getTime()) {
      this.report('3', `${record.id}'s drain extended to ${new Date(deadline).toISOString()}, past the termination notice (${record.noticeDeadline.toISOString()})`);
    }
    this.checkExtensionCaps(record);
  }

  /**
   * Invariant 10: a deadline moved past the drain's first one stays within drain start +
   * maxDrainTimeout and, with forced expiry on, createdAt + forcedAge + drainTimeout. (A first
   * deadline beyond them is the config's choice: only extensions are capped.)
   */
  private checkExtensionCaps(record: InstanceRecord): void {
    const deadline = record.drainDeadline?.getTime() ?? null;
    const first = this.drainsStarted.get(record.id)?.deadline ?? null;
    if (deadline === null || record.status !== 'draining' || (first !== null && deadline <= first)) return;
    const settings = settingsOf(this.w.config(), record.tenant, record.group);
    if (!settings) return;
    const caps: Array<[number, string]> = [];
    if (settings.maxDrainTimeoutMs && record.drainStartedAt) caps.push([record.drainStartedAt.getTime() + settings.maxDrainTimeoutMs, 'drain start + maxDrainTimeout']);
    if (settings.forcedAgeMs > 0) caps.push([record.createdAt.getTime() + settings.forcedAgeMs + settings.drainTimeoutMs, 'createdAt + forcedAge + drainTimeout']);
    for (const [cap, what] of caps) {
      if (deadline > cap) this.report('10', `${record.id}'s drain (${record.drainReason ?? '?'}, first deadline ${first === null ? '?' : new Date(first).toISOString()}) extended to ${new Date(deadline).toISOString()}, past ${what} (${new Date(cap).toISOString()})`);
    }
  }

  private checkDrainEnd(record: InstanceRecord, reason: string): void {
    const now = this.w.now();
    const notice = this.drains.get(record.id);
    switch (reason) {
      case 'drainAcked':
        if (!this.acked.has(record.id) || record.drainAckedAt === null) this.report('3', `${record.id} deleted as acknowledged, but nobody acknowledged its drain`);
        return;
      case 'drainDeadline': {
        const deadline = record.drainDeadline?.getTime() ?? Number.POSITIVE_INFINITY;
        if (now < deadline) this.report('3', `${record.id} deleted for its drain deadline ${Math.round((deadline - now) / 1000)}s early`);
        if (notice && deadline > notice.deleteAt) this.report('3', `${record.id}'s drain deadline moved later than the one notified`);
        return;
      }
      case 'terminated': {
        const held = this.w.provider.find(record.id);
        // Back from a freeze without a report since: the provider said stopped when last asked, and
        // nothing has told the reconciler otherwise (README.md: a report after it is what recovers).
        const resumed = this.w.failures?.resumedAt(record.id);
        const unheardSince = resumed !== undefined && (record.healthAt === null || record.healthAt.getTime() < resumed);
        if (held && !isTerminal(held.status) && !unheardSince) this.report('3', `${record.id}'s drain cut short as terminated, but the provider says ${held.status}`);
        return;
      }
      default:
        this.report('3', `${record.id}'s drain (${record.drainReason ?? '?'}) cut short by a delete for ${reason}`);
    }
  }

  /**
   * When an instance must be decided gone by (status deleting or deleted): its drain deadline,
   * its acknowledgement, and forced expiry, each pushed past times the reconciler could not act,
   * plus the processing slack. Infinity when nothing bounds it.
   */
  dueBy(record: InstanceRecord): { at: number; why: string } {
    const d = this.w.disturbances;
    let best = { at: Number.POSITIVE_INFINITY, why: '' };
    // The slack depends on trouble around when the reconciler could first act on it.
    const consider = (at: number, why: string): void => {
      const due = d.dueAfter(at, this.slackAfter(d.firstClear(at)));
      if (due < best.at) best = { at: due, why };
    };
    if (record.status === 'draining') {
      if (record.drainDeadline) consider(record.drainDeadline.getTime(), `drain deadline ${new Date(record.drainDeadline).toISOString()}`);
      if (record.drainAckedAt) consider(record.drainAckedAt.getTime(), 'drain acknowledged');
    }
    const settings = settingsOf(this.w.config(), record.tenant, record.group);
    if (settings && settings.forcedAgeMs > 0) {
      const config = this.w.config();
      const forcedAt = record.createdAt.getTime() + settings.forcedAgeMs;
      const start = Math.max(forcedAt, record.confirmedAt?.getTime() ?? forcedAt);
      const drainMs = this.w.everRemoved(record.tenant, record.group)
        ? Math.max(settings.drainTimeoutMs, config.shard.defaultDrainTimeoutMs)
        : settings.drainTimeoutMs;
      // The drain starts at the latest once the reconciler had the slack to act; its deadline is
      // then stored, and the delete follows it.
      const drainStart = d.dueAfter(start, this.slackAfter(d.firstClear(start)));
      if (Number.isFinite(drainStart)) consider(drainStart + drainMs, `forced expiry at ${new Date(forcedAt).toISOString()} + drain ${drainMs / 1000}s`);
    }
    return best;
  }

  private checkTimely(record: InstanceRecord, prev: InstanceStatus | 'none'): void {
    if (prev !== 'running' && prev !== 'draining') return;
    // Judge the record as it was before this decision.
    const before = { ...record, status: prev };
    const due = this.dueBy(before);
    const now = this.w.now();
    if (now > due.at) this.report('3', `${record.id} decided gone ${Math.round((now - due.at) / 1000)}s after it was due (${due.why}, slack included)`);
  }

  /** Every live record of the fleet's groups (prepared per-group queries: this runs after every step). */
  private allLive(db: LocalDb): InstanceRecord[] {
    return this.w.groups().flatMap((g) => db.liveInstances(g.tenant, g.group));
  }

  // ---- after every step --------------------------------------------------------------------

  checkStep(): void {
    const db = this.w.db();
    if (!db) return;
    const now = this.w.now();
    // Only drains and forced expiry make an instance due: read just those records.
    const config = this.w.config();
    const forced = this.w.groups().filter((g) => (settingsOf(config, g.tenant, g.group)?.forcedAgeMs ?? 0) > 0);
    const records = forced.flatMap((g) => db.liveInstances(g.tenant, g.group));
    const seen = new Set(records.map((r) => r.id));
    for (const [id, status] of this.status) {
      if (status !== 'draining' || seen.has(id)) continue;
      const record = db.getInstance(id);
      if (record) records.push(record);
    }
    for (const record of records) {
      if (record.status !== 'running' && record.status !== 'draining') continue;
      const due = this.dueBy(record);
      if (now > due.at) {
        this.report('3', `${record.id} (${record.status}) still not deleted ${Math.round((now - due.at) / 1000)}s after it was due (${due.why}, slack included)`);
      }
      if (record.status === 'draining') this.checkExtensionCaps(record);
    }
    // Budgets, on the store as it stands (a rotation resumes silently when a protection or hold ends).
    for (const g of this.w.groups()) {
      if ((settingsOf(config, g.tenant, g.group)?.budgets.length ?? 0) > 0) this.checkBudgets(g.tenant, g.group, 'after the step');
    }
    this.checkSizes(config);
  }

  // ---- invariant 13: sizes -------------------------------------------------------------------

  /** The size each configured group is reconciled to is the one in force, within its bounds. */
  private checkSizes(config: ModelConfig): void {
    if (!this.w.plannedSize) return;
    for (const settings of config.groups) {
      const planned = this.w.plannedSize(settings.tenant, settings.group);
      if (planned === null) continue;
      const expected = settings.size;
      if (planned !== 0 && (planned < settings.min || planned > settings.max)) {
        this.report('13', `${settings.tenant}/${settings.group} is reconciled to ${planned}, outside min ${settings.min}..max ${settings.max}`);
      } else if (planned !== expected) {
        this.report('13', `${settings.tenant}/${settings.group} is reconciled to ${planned}; the size in force is ${expected} (configured ${settings.configSize}, min ${settings.min}, max ${settings.max})`);
      }
    }
  }

  /** At the end: every drain notified ended in a delete (or the instance vanished). */
  checkDrainsEnded(): void {
    const db = this.w.db();
    if (!db) return;
    for (const [id, notice] of this.drains) {
      const record = db.getInstance(id);
      if (!record) {
        this.report('3', `drain of ${id} (${notice.reason}) notified for an instance the store does not know`);
        continue;
      }
      if (record.status === 'draining' && record.drainDeadline && record.drainDeadline.getTime() > this.w.now()) continue; // still in time
      if (record.status !== 'deleting' && record.status !== 'deleted') {
        this.report('3', `drain of ${id} (${notice.reason}, notified at ${new Date(notice.at).toISOString()}) never ended: it is ${record.status}`);
      }
    }
  }

  // ---- invariant 5: no leak ----------------------------------------------------------------

  /** Provider instances the store does not hold live (leaks, duplicates); null when none. */
  leaks(): string | null {
    const db = this.w.db();
    if (!db) return null;
    const problems: string[] = [];
    const live = new Map(this.allLive(db).map((i) => [i.id, i]));
    const seen = new Set<string>();
    for (const p of this.w.provider.instances()) {
      // Creates carry the instance id as idempotency key (README.md): that is the instance it is.
      const id = p.idempotencyKey;
      if (seen.has(id)) problems.push(`two provider instances for ${id}`);
      seen.add(id);
      if (p.tags[TAGS.instanceId] !== id) problems.push(`${p.providerId}, created for ${short(id)}, is tagged as ${p.tags[TAGS.instanceId] ?? 'no instance'}`);
      const record = live.get(id);
      if (!record) {
        const any = db.getInstance(id);
        problems.push(`provider holds ${p.providerId} (${short(id)}, ${p.status}) that the store ${any ? `has as ${any.status} (${any.deleteReason ?? ''})` : 'does not know'}`);
      } else if (record.providerId !== null && record.providerId !== p.providerId) {
        problems.push(`${short(id)} is ${record.providerId} in the store but ${p.providerId} at the provider`);
      }
    }
    return problems.length > 0 ? problems.join('; ') : null;
  }
}
