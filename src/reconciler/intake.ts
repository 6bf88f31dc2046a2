/**
 * Event intake: what happens to an event between `Reconciler.enqueue` and a group's handler.
 *
 * - Routing: an event is completed with its tenant and group (from its instance's record when
 *   the caller named only the instance) and becomes a `GroupEvent`; one that names no known
 *   group, or an instance event without its instance, is refused with the reason.
 * - Coalescing: events queued for the same group and instance merge (`mergeEvents`); the
 *   earliest termination time wins, a group's causes are kept together.
 * - Duplicates: an event with `preventDuplicate` is skipped when the same (type, tenant, group,
 *   instance) was processed within two health intervals (`RecentEvents`).
 */
import type { Clock } from '../clock/index.js';
import { EventType, describeEvent, groupKeyOf, type GroupEvent, type QueuedEvent, type ReconcileEvent } from './events.js';
import type { ReconcilerStore } from './ports.js';

/** Past this many remembered events, the ones older than the window are swept. */
const RECENT_SWEEP_AT = 50_000;

/** Key for duplicate suppression: (type, tenant, group, instance). */
function duplicateKey(e: ReconcileEvent): string {
  return `${e.type}|${e.tenant ?? ''}|${e.groupKey ?? ''}|${e.instanceId ?? ''}`;
}

/** Merges an event into a queued one with the same coalescing key. */
export function mergeEvents<E extends QueuedEvent>(queued: E, incoming: E): E {
  const merged: E = { ...queued, attempt: Math.max(queued.attempt ?? 0, incoming.attempt ?? 0) };
  if (queued.type === EventType.TerminationNotice) {
    // The earliest termination time wins.
    const a = queued.timestamp?.getTime() ?? Number.POSITIVE_INFINITY;
    const b = incoming.timestamp?.getTime() ?? Number.POSITIVE_INFINITY;
    if (b < a) merged.timestamp = incoming.timestamp;
  } else if (queued.type === EventType.GroupChanged) {
    // Keep every reason the group was looked at, for the audit ("config+healthy").
    const causes = new Set([...(queued.cause ?? '').split('+'), ...(incoming.cause ?? '').split('+')].filter((c) => c !== ''));
    if (causes.size > 0) merged.cause = [...causes].slice(0, 6).join('+');
  } else if (incoming.cause === 'disconnect' || queued.cause === undefined) {
    merged.cause = incoming.cause;
    merged.timestamp = incoming.timestamp ?? queued.timestamp;
  }
  return merged;
}

/** An event as intake routes it: to its group's queue, or refused with the reason. */
export type Routing = { ok: true; event: GroupEvent } | { ok: false; group: string; instanceId: string; problem: string };

/**
 * Completes an event with its tenant and group (from the store when only the instance is named).
 * Not for InitialReconcile, which goes to the queue's barrier.
 */
export function routeEvent(event: ReconcileEvent, store: Pick<ReconcilerStore, 'getInstance'>): Routing {
  let tenant = event.tenant;
  let group = event.groupKey;
  if ((tenant === undefined || group === undefined) && event.instanceId) {
    const record = store.getInstance(event.instanceId);
    if (record) {
      tenant ??= record.tenant;
      group ??= record.group;
    }
  }
  if (tenant === undefined || group === undefined) {
    return { ok: false, group: '', instanceId: event.instanceId ?? '', problem: `${describeEvent(event)}: event names no tenant and group, and its instance is unknown` };
  }
  if (event.type === EventType.GroupChanged) return { ok: true, event: { ...event, type: event.type, tenant, groupKey: group } };
  if (event.type === EventType.InitialReconcile || !event.instanceId) {
    return { ok: false, group: groupKeyOf(tenant, group), instanceId: '', problem: `${describeEvent(event)}: event needs an instanceId` };
  }
  return { ok: true, event: { ...event, type: event.type, tenant, groupKey: group, instanceId: event.instanceId } };
}

/** Whatever was enqueued, as text for a log line (it may not be an event, or not serialisable). */
export function describeEventSafe(event: unknown): string {
  try {
    return JSON.stringify(event);
  } catch {
    return String(event);
  }
}

/**
 * When each (type, tenant, group, instance) was last processed, for `preventDuplicate`. The
 * window is two health intervals of the config in force, read at each use.
 */
export class RecentEvents {
  private readonly lastProcessed = new Map<string, number>();

  constructor(
    private readonly clock: Clock,
    private readonly windowMs: () => number,
  ) {}

  /** True when the same event was processed within the window. */
  seenRecently(event: ReconcileEvent): boolean {
    const last = this.lastProcessed.get(duplicateKey(event));
    return last !== undefined && this.clock.nowMs() - last < this.windowMs();
  }

  processed(event: ReconcileEvent): void {
    const now = this.clock.nowMs();
    this.lastProcessed.set(duplicateKey(event), now);
    if (this.lastProcessed.size > RECENT_SWEEP_AT) {
      const window = this.windowMs();
      for (const [key, at] of this.lastProcessed) if (now - at >= window) this.lastProcessed.delete(key);
    }
  }
}
