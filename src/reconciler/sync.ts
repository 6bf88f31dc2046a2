/**
 * Provider sync, run by InitialReconcile (at start, on every leadership win, and periodically):
 * the provider is the truth about what exists, the store is the truth about what Drover decided.
 * - a recorded create the provider has → adopted (confirmed);
 * - an instance the store thinks live that the provider lacks → marked gone (the plan forgets it);
 * - an instance the provider has, tagged for this shard, that the store does not know → adopted
 *   into its group (the plan removes it if surplus), with any drain its tags record resumed;
 * - one the store already deleted → a leak: deleted again.
 * With `fromTags` (a start or a leadership win, not a periodic resync), drains recorded in the
 * provider's tags also win over the store's rows, which may be stale from an earlier term:
 * - tags with a drain (start, deadline, reason) → the row drains with that deadline (a drain
 *   begun, or extended, by another leader is resumed, never restarted);
 * - tags with the drain fields present but empty (a cancelled drain) → a row draining since
 *   before the cancel (`drain-cancelled-at`) returns to service; a later drain stands;
 * - no drain tags → the row is kept as it is (a drain this replica began whose tag write was
 *   lost goes on: its agent was already told to drain).
 * A periodic resync leaves known rows alone: within a term the store is ahead of the tags,
 * which are written after it.
 */
import { TAG, type ProviderInstance } from '../providers/index.js';
import { LAUNCH_HOOK_STATES, type InstanceRef, type InstanceStatus, type LaunchHookState, type NewAuditEntry } from '../store/index.js';
import { timedCall } from './calls.js';
import { DRAIN_REASONS, isOneOf, type DrainReason } from './reasons.js';
import type { Context } from './context.js';
import { Priority } from '../queue/priority.js';
import { groupKeyOf } from './events.js';

export interface SyncResult {
  /** Groups ("tenant/group") whose instances the sync changed. */
  touched: Set<string>;
  listed: number;
  adopted: number;
  confirmed: number;
  vanished: number;
  leaks: number;
}

function parseTime(text: string | undefined): Date | null {
  if (!text) return null;
  const ms = Date.parse(text);
  return Number.isFinite(ms) ? new Date(ms) : null;
}

/**
 * The drain reason a provider tag records. Tags are outside input (anyone with access to the
 * cloud can edit them): a reason Drover does not know is read as a scale-down, as a missing one
 * always was, so that it is budgeted as a voluntary disruption and never counted as a failure.
 */
function drainReasonFromTag(text: string | undefined): DrainReason {
  return isOneOf(DRAIN_REASONS, text) ? text : 'scaleDown';
}

/** A drain as provider tags record it: begun (with its facts), explicitly cleared, or no record. */
type TaggedDrain = { kind: 'draining'; startedAt: Date; deadline: Date; reason: DrainReason } | { kind: 'cleared'; cancelledAt: Date | null } | null;

function drainFromTags(tags: Record<string, string>): TaggedDrain {
  const startedText = tags[TAG.drainStartedAt];
  if (startedText === undefined) return null;
  if (startedText === '') return { kind: 'cleared', cancelledAt: parseTime(tags[TAG.drainCancelledAt]) };
  const startedAt = parseTime(startedText);
  const deadline = parseTime(tags[TAG.drainDeadline]);
  if (!startedAt || !deadline) return null;
  return { kind: 'draining', startedAt, deadline, reason: drainReasonFromTag(tags[TAG.drainReason]) };
}

export async function syncWithProvider(ctx: Context, shardId: string, options: { fromTags?: boolean } = {}): Promise<SyncResult> {
  const listed: ProviderInstance[] = await ctx.gate.run('read', Priority.high, () =>
    timedCall(ctx, 'list', ctx.callTimeoutMs(), 'listing provider instances', () => ctx.provider.list({ [TAG.shard]: shardId })),
  );
  if (ctx.halted()) return { touched: new Set(), listed: listed.length, adopted: 0, confirmed: 0, vanished: 0, leaks: 0 };

  const now = ctx.clock.now();
  // Sized for a million instances: one map (by the Drover id in the tags) and a mark per listed
  // instance; the map by provider id is built only if a row is not found by its id (rare: an
  // instance whose id tag was lost or edited).
  const byInstanceId = new Map<string, number>();
  for (let n = 0; n < listed.length; n++) {
    const id = listed[n]!.tags[TAG.instanceId];
    if (id) byInstanceId.set(id, n);
  }
  let byProviderId: Map<string, number> | null = null;
  const providerIndex = (providerId: string): number | undefined => {
    byProviderId ??= new Map(listed.map((p, n) => [p.providerId, n]));
    return byProviderId.get(providerId);
  };
  // matched[n]: some live row is listed instance n (so it is not adopted).
  const matched = new Uint8Array(listed.length);
  const result: SyncResult = { touched: new Set(), listed: listed.length, adopted: 0, confirmed: 0, vanished: 0, leaks: 0 };
  const epoch = ctx.epoch();

  const fromTags = options.fromTags === true;
  ctx.store.transaction(() => {
    // The rows are streamed (a million at rest are never held at once), and no store call may
    // run while the read is open: a row that may need a write or a read is kept for after it, in
    // order; a row at rest (see atRest) needs nothing and is dropped at once.
    const later: Array<{ row: InstanceRef; found: ProviderInstance | undefined }> = [];
    for (const row of ctx.store.liveInstanceRefs()) {
      const n = byInstanceId.get(row.id) ?? (row.providerId ? providerIndex(row.providerId) : undefined);
      const found = n === undefined ? undefined : listed[n];
      if (n !== undefined) matched[n] = 1;
      if (ctx.inFlight.has(row.id)) continue;
      if (found && atRest(row, found, fromTags)) continue;
      later.push({ row, found });
    }
    for (const { row, found } of later) {
      if (found) {
        reconcileFound(ctx, row, found, now, epoch, result, fromTags);
      } else if (row.status !== 'creating' && row.providerStatus !== 'notFound') {
        // Gone at the provider. The plan forgets it (and replaces it if it was serving).
        ctx.store.updateInstance(row.id, { providerStatus: 'notFound', providerCheckedAt: now });
        result.vanished++;
        result.touched.add(groupKeyOf(row.tenant, row.group));
      }
    }
    for (let n = 0; n < listed.length; n++) {
      if (matched[n] === 0) adoptUnknown(ctx, listed[n]!, now, epoch, result);
    }
  });
  return result;
}

const isTerminal = (status: string | null): boolean => status !== null && status !== 'running' && status !== 'pending';

/**
 * A known row that reconcileFound would leave alone whatever it read: not a recorded create, its
 * provider id recorded, neither it nor the provider terminal, and (on a start or a win) no drain
 * tags to take. Conservative: a row it does not call at rest simply goes through reconcileFound.
 */
function atRest(row: InstanceRef, found: ProviderInstance, fromTags: boolean): boolean {
  return row.status !== 'creating' && row.providerId !== null && !isTerminal(found.status) && !isTerminal(row.providerStatus) && (!fromTags || found.tags[TAG.drainStartedAt] === undefined);
}

type Fields = Parameters<Context['store']['updateInstance']>[1];
type Move = { to: InstanceStatus; fields: Fields; audit: Omit<NewAuditEntry, 'instanceId'> };

function reconcileFound(ctx: Context, row: InstanceRef, found: ProviderInstance, now: Date, epoch: number | null, result: SyncResult, fromTags: boolean): void {
  const fields: Fields = {};
  const moves: Move[] = [];
  const audit = { tenant: row.tenant, group: row.group, at: now, epoch };
  if (row.status === 'creating') {
    const createReason = ctx.store.getInstance(row.id)?.createReason ?? 'scaleUp';
    result.confirmed++;
    moves.push({
      to: 'running',
      fields: { providerId: found.providerId, confirmedAt: now, attempts: 0, nextAttemptAt: null, lastError: null },
      audit: { ...audit, action: 'adopt', reason: createReason, detail: `recorded create found at the provider as ${found.providerId}` },
    });
  } else if (!row.providerId) {
    fields.providerId = found.providerId;
  }
  // Record what the provider says only when it matters: terminal, or changed from a terminal one.
  const terminalNow = found.status !== 'running' && found.status !== 'pending';
  const terminalBefore = row.providerStatus !== null && row.providerStatus !== 'running' && row.providerStatus !== 'pending';
  if ((terminalNow || terminalBefore) && row.providerStatus !== found.status) {
    fields.providerStatus = found.status;
    fields.providerCheckedAt = now;
  }
  if (fromTags) {
    const running = (moves.at(-1)?.to ?? row.status) === 'running';
    const drain = drainFromTagsFor(ctx, row, running, drainFromTags(found.tags), now, epoch);
    Object.assign(fields, drain.fields);
    if (drain.move) moves.push(drain.move);
    else if (drain.audit) ctx.store.appendAudit({ ...drain.audit, instanceId: row.id });
  }
  if (Object.keys(fields).length === 0 && moves.length === 0) return;
  if (Object.keys(fields).length > 0) ctx.store.updateInstance(row.id, fields);
  for (const move of moves) ctx.store.transition(row.id, move.to, move.fields, move.audit);
  result.touched.add(groupKeyOf(row.tenant, row.group));
}

/**
 * What the provider's drain tags change in a known row (see the header): fields, a status move
 * with its audit entry, or an audit entry for fields alone (a deadline taken from the tags).
 */
function drainFromTagsFor(
  ctx: Context,
  row: InstanceRef,
  running: boolean,
  tagged: TaggedDrain,
  now: Date,
  epoch: number | null,
): { fields: Fields; move?: Move; audit?: Omit<NewAuditEntry, 'instanceId'> } {
  if (tagged === null || (!running && row.status !== 'draining')) return { fields: {} };
  const audit = { tenant: row.tenant, group: row.group, at: now, epoch };
  if (tagged.kind === 'cleared') {
    if (row.status !== 'draining') return { fields: {} };
    // Only a drain begun before the cancel the tags record is taken back: a later one (a health
    // replacement, or a drain whose own tag write was lost or is still out) stands.
    const startedAt = ctx.store.getInstance(row.id)?.drainStartedAt?.getTime() ?? null;
    if (startedAt !== null && tagged.cancelledAt !== null && startedAt > tagged.cancelledAt.getTime()) return { fields: {} };
    return {
      fields: {},
      move: {
        to: 'running',
        fields: { drainStartedAt: null, drainDeadline: null, drainReason: null, drainAckedAt: null },
        audit: { ...audit, action: 'drainCancelled', reason: 'providerTags', detail: "the provider's tags say its drain was cancelled; back in service" },
      },
    };
  }
  if (row.status === 'draining') {
    const current = ctx.store.getInstance(row.id);
    // A termination notice shortens a drain in the row only: no deadline from the tags outlives it.
    const notice = current?.noticeDeadline?.getTime() ?? Number.POSITIVE_INFINITY;
    const deadline = notice < tagged.deadline.getTime() ? new Date(notice) : tagged.deadline;
    if (current?.drainDeadline?.getTime() === deadline.getTime() && current.drainReason === tagged.reason) return { fields: {} };
    return {
      fields: { drainStartedAt: tagged.startedAt, drainDeadline: deadline, drainReason: tagged.reason },
      audit: { ...audit, action: 'drainExtended', reason: tagged.reason, detail: `deadline from the provider's tags: ${deadline.toISOString()}` },
    };
  }
  return {
    fields: {},
    move: {
      to: 'draining',
      fields: { drainStartedAt: tagged.startedAt, drainDeadline: tagged.deadline, drainReason: tagged.reason, drainAckedAt: null },
      audit: { ...audit, action: 'drain', reason: tagged.reason, detail: `resumed from the provider's tags: started ${tagged.startedAt.toISOString()}, deadline ${tagged.deadline.toISOString()}` },
    },
  };
}

function launchHookFromTag(value: string | undefined): LaunchHookState | null {
  return value !== undefined && (LAUNCH_HOOK_STATES as readonly string[]).includes(value) ? (value as LaunchHookState) : null;
}

function adoptUnknown(ctx: Context, p: ProviderInstance, now: Date, epoch: number | null, result: SyncResult): void {
  const id = p.tags[TAG.instanceId];
  const tenant = p.tags[TAG.tenant];
  const group = p.tags[TAG.group];
  const existing = id ? ctx.store.getInstance(id) : null;
  if (existing) {
    // The store deleted it (cancelled, failed, or deleted while a call was out): a leak.
    ctx.store.transition(
      existing.id,
      'deleting',
      { providerId: p.providerId, deleteReason: 'leak', deletedAt: null, attempts: 0, nextAttemptAt: null, lastError: null },
      { tenant: existing.tenant, group: existing.group, at: now, action: 'leak', reason: 'leak', detail: `provider still has ${p.providerId} (${p.status}); deleting it`, epoch },
    );
    result.leaks++;
    result.touched.add(groupKeyOf(existing.tenant, existing.group));
    return;
  }
  if (!id || !tenant || !group) {
    ctx.log.warn({ providerId: p.providerId, tags: p.tags }, 'instance tagged for this shard lacks Drover tags; left alone');
    return;
  }
  const drainStartedAt = parseTime(p.tags[TAG.drainStartedAt]);
  const drainDeadline = parseTime(p.tags[TAG.drainDeadline]);
  const draining = drainStartedAt !== null && drainDeadline !== null;
  const terminal = p.status !== 'running' && p.status !== 'pending';
  ctx.store.insertInstance({
    id,
    tenant,
    group,
    providerId: p.providerId,
    status: draining ? 'draining' : 'running',
    templateName: p.tags[TAG.templateName] ?? '',
    templateHash: p.tags[TAG.templateHash] ?? '',
    createReason: 'adopted',
    createdAt: parseTime(p.tags[TAG.createdAt]) ?? now,
    confirmedAt: now,
    providerStatus: terminal ? p.status : null,
    providerCheckedAt: terminal ? now : null,
    drainStartedAt: draining ? drainStartedAt : null,
    drainDeadline: draining ? drainDeadline : null,
    drainReason: draining ? drainReasonFromTag(p.tags[TAG.drainReason]) : null,
    // A launch hook still pending when its leader went away keeps the instance out of service
    // (its timeout runs again from now, the adoption).
    launchHook: launchHookFromTag(p.tags[TAG.launchHook]),
  });
  ctx.store.appendAudit({
    tenant,
    group,
    at: now,
    instanceId: id,
    action: 'adopt',
    reason: 'adopted',
    detail: `found at the provider as ${p.providerId}${draining ? `, draining until ${drainDeadline.toISOString()}` : ''}`,
    epoch,
  });
  result.adopted++;
  result.touched.add(groupKeyOf(tenant, group));
}
