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
import { groupSettings, type DroverConfig, type GroupSettings } from '../src/config/index.js';
import { TAG, isTerminalStatus } from '../src/providers/index.js';
import type { SimProvider } from '../src/providers/sim/index.js';
import type { AuditEntry, InstanceRecord, InstanceStatus, LocalDb } from '../src/store/index.js';

export type InvariantId = '1' | '2' | '3' | '4' | '5' | '6' | 'lifecycle' | 'config' | 'error';

export const INVARIANT_NAMES: Record<InvariantId, string> = {
  '1': 'invariant 1: our creates never take a group above size + maxSurge',
  '2': 'invariant 2: expiry and drift drain an instance only once its replacement reports healthy',
  '3': 'invariant 3: every drain ends in a delete (ack, deadline or terminal), in time; forced expiry bounds lifetimes',
  '4': 'invariant 4: nothing is created, deleted or drained while not leader',
  '5': 'invariant 5: no leak: every instance the provider holds is known to the store',
  '6': 'invariant 6: after the faults stop, every group is at size, all in service, within the bound',
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

/** What the checker sees of the world. */
export interface WorldView {
  now(): number;
  db(): LocalDb | null;
  readonly provider: SimProvider;
  config(): DroverConfig;
  /** The leader flag and the generation of the running reconciler (null when none runs). */
  leader(): boolean;
  runningGeneration(): number | null;
  /** When the running reconciler started observing health (its grace period starts there). */
  observingSince(): number;
  readonly disturbances: Disturbances;
  everRemoved(tenant: string, group: string): boolean;
  /** Processing slack: how late a due action may legitimately be decided. */
  slackMs(): number;
  step(): number;
  /** Every group of the fleet (configured or not). */
  groups(): ReadonlyArray<{ tenant: string; group: string }>;
}

interface DrainNotice {
  reason: string;
  deleteAt: number;
  at: number;
}

const ALLOWED: Record<InstanceStatus | 'none', readonly InstanceStatus[]> = {
  none: ['creating', 'running', 'draining'],
  creating: ['creating', 'running', 'deleting', 'deleted'],
  running: ['running', 'draining', 'deleting', 'deleted'],
  draining: ['draining', 'deleting', 'deleted'],
  deleting: ['deleting', 'deleted'],
  deleted: ['deleted', 'deleting'],
};

const short = (id: string | null): string => (id ? id.slice(0, 10) : '-');

/** Drains an operator may cancel (voluntary rotations). */
const CANCELLABLE: ReadonlySet<string> = new Set(['operator', 'expiry', 'drift']);
/** Drains that must wait for a healthy replacement (invariant 2). */
const REPLACEMENT_FIRST: ReadonlySet<string> = new Set(['operator', 'expiry', 'drift']);

/** groupSettings hashes the template on every call; the checker asks often, for few configs. */
const settingsCache = new WeakMap<DroverConfig, Map<string, GroupSettings | null>>();
function settingsOf(config: DroverConfig, tenant: string, group: string): GroupSettings | null {
  let byGroup = settingsCache.get(config);
  if (!byGroup) {
    byGroup = new Map();
    settingsCache.set(config, byGroup);
  }
  const key = `${tenant}/${group}`;
  let settings = byGroup.get(key);
  if (settings === undefined) {
    settings = groupSettings(config, tenant, group);
    byGroup.set(key, settings);
  }
  return settings;
}

export class Invariants {
  readonly violations: Violation[] = [];
  private readonly status = new Map<string, InstanceStatus>();
  private readonly drains = new Map<string, DrainNotice>();
  /** Instances the world sent a drain ack for (agent or operator). */
  readonly acked = new Set<string>();

  constructor(private readonly w: WorldView) {}

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

  /** Every audit entry, inside the transaction that wrote it: the record is already updated. */
  onAudit(entry: AuditEntry): void {
    const db = this.w.db();
    if (!db || !entry.instanceId) return;
    const id = entry.instanceId;
    const record = db.getInstance(id);
    if (!record) return;
    const prev = this.status.get(id) ?? 'none';
    // Provider sync writes the audit of an adopted create just before the record turns running.
    const status = entry.action === 'adopt' && record.status === 'creating' ? 'running' : record.status;
    if (entry.action === 'drainCancelled' && prev === 'draining') {
      // An operator may cancel a voluntary rotation's drain: it ends there, the instance serves again.
      const reason = this.drains.get(id)?.reason ?? entry.reason;
      if (!CANCELLABLE.has(reason)) this.report('3', `${id}'s drain (${reason}) was cancelled; only operator, expiry and drift drains may be`);
      this.drains.delete(id);
      this.status.set(id, status);
      return;
    }
    if (!ALLOWED[prev].includes(status)) {
      this.report(prev === 'draining' ? '3' : 'lifecycle', `${id} went from ${prev} to ${status} (${entry.action} ${entry.reason})`);
    }
    this.status.set(id, status);
    switch (entry.action) {
      case 'create':
        this.checkSurge(record);
        break;
      case 'drain':
        if (prev === 'draining') this.report('lifecycle', `${id} drained again (${entry.reason}) while draining for ${this.drains.get(id)?.reason ?? '?'}`);
        if (REPLACEMENT_FIRST.has(entry.reason)) this.checkReplacement(record, entry.reason, 'drained');
        break;
      case 'drainExtended':
        // Provider sync writes this audit before it updates the row: look once the write is done.
        queueMicrotask(() => {
          const now = this.w.db()?.getInstance(id);
          if (now) this.checkExtension(now);
        });
        break;
      case 'delete':
        if (REPLACEMENT_FIRST.has(entry.reason)) this.checkReplacement(record, entry.reason, 'deleted');
        if (prev === 'draining') this.checkDrainEnd(record, entry.reason);
        else if (entry.reason === 'drainAcked' || entry.reason === 'drainDeadline') {
          this.report('3', `${id} deleted for ${entry.reason} although it was ${prev}, not draining`);
        }
        this.checkTimely(record, prev);
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

  // ---- invariant 1: surge ------------------------------------------------------------------

  private checkSurge(record: InstanceRecord): void {
    const db = this.w.db();
    if (!db) return;
    const { tenant, group } = record;
    const live = new Map<string, string>();
    for (const i of db.liveInstances(tenant, group)) live.set(i.id, `${i.status}${i.replaces ? ` replacing ${short(i.replaces)}` : ''}`);
    for (const p of this.w.provider.instances()) {
      if (p.tags[TAG.tenant] !== tenant || p.tags[TAG.group] !== group) continue;
      const id = p.tags[TAG.instanceId] ?? p.providerId;
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
    const stale = config.shard.healthCheckInterval * config.shard.missedHealthThreshold;
    const now = this.w.now();
    const replacements = db.liveInstances(old.tenant, old.group).filter((i) => i.replaces === old.id);
    const ok = replacements.some(
      (r) =>
        r.status === 'running' &&
        r.healthAt !== null &&
        r.unhealthyAt === null &&
        r.healthAt.getTime() + stale > now,
    );
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
    const settings = settingsOf(this.w.config(), record.tenant, record.group);
    const caps: Array<[number, string]> = [];
    if (settings?.disruption.maxDrainTimeoutMs && record.drainStartedAt) caps.push([record.drainStartedAt.getTime() + settings.disruption.maxDrainTimeoutMs, 'drain start + maxDrainTimeout']);
    if (record.noticeDeadline) caps.push([record.noticeDeadline.getTime(), 'the termination notice']);
    for (const [cap, what] of caps) {
      if (deadline !== null && deadline > cap) this.report('3', `${record.id}'s drain extended to ${new Date(deadline).toISOString()}, past ${what} (${new Date(cap).toISOString()})`);
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
        if (held && !isTerminalStatus(held.status)) this.report('3', `${record.id}'s drain cut short as terminated, but the provider says ${held.status}`);
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
    const slack = this.w.slackMs();
    let best = { at: Number.POSITIVE_INFINITY, why: '' };
    const consider = (at: number, why: string): void => {
      const due = d.dueAfter(at, slack);
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
        ? Math.max(settings.drainTimeoutMs, config.shard.defaultDrainTimeout)
        : settings.drainTimeoutMs;
      // The drain starts at the latest once the reconciler had the slack to act; its deadline is
      // then stored, and the delete follows it.
      const drainStart = d.dueAfter(start, slack);
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
      const id = p.tags[TAG.instanceId] ?? '';
      if (seen.has(id)) problems.push(`two provider instances for ${id}`);
      seen.add(id);
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
