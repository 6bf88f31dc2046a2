/**
 * Reconciliation events (the seed's EventType and ReconcileEvent). An event records a fact about
 * a group or instance; handling it marks the group for reconciliation.
 */
import { Priority } from '../queue/priority.js';

export const EventType = {
  /** Look at an instance now (an agent disconnected, a health report is overdue). */
  CheckInstance: 'CheckInstance',
  /** A group's configuration (or anything else about it) changed: reconcile it. */
  GroupChanged: 'GroupChanged',
  /** The provider says an instance is gone. */
  InstanceDeleted: 'InstanceDeleted',
  /** The operator (or the instance's agent) acknowledged that a drain is complete. */
  DrainAcked: 'DrainAcked',
  /** The provider will terminate an instance soon (spot interruption, maintenance). */
  TerminationNotice: 'TerminationNotice',
  /** Reconcile everything against the provider (start-up, leadership won). */
  InitialReconcile: 'InitialReconcile',
} as const;
export type EventType = (typeof EventType)[keyof typeof EventType];
export const EVENT_TYPES: readonly EventType[] = Object.values(EventType);

export interface ReconcileEvent {
  type: EventType;
  tenant?: string;
  groupKey?: string;
  instanceId?: string;
  /**
   * When the fact happened. For TerminationNotice: when the provider will terminate the
   * instance (absent: now + `shard.defaultNoticeWindow`). For CheckInstance with cause
   * "disconnect": when the connection dropped.
   */
  timestamp?: Date;
  /** Skip if the same (type, tenant, group, instance) was processed within 2 × healthCheckInterval. */
  preventDuplicate?: boolean;
  /** Why the event was raised (e.g. "disconnect", "config", "timer"). */
  cause?: string;
  /** Retry or follow-up poll number, starting at 0. */
  attempt?: number;
}

/** An event after intake: the group it concerns is known. */
type Routed<T extends EventType> = Omit<ReconcileEvent, 'type' | 'tenant' | 'groupKey'> & { type: T; tenant: string; groupKey: string };

/** An event about one instance of a known group (intake refuses one without `instanceId`). */
export type InstanceEvent =
  | (Routed<typeof EventType.CheckInstance> & { instanceId: string })
  | (Routed<typeof EventType.InstanceDeleted> & { instanceId: string })
  | (Routed<typeof EventType.DrainAcked> & { instanceId: string })
  | (Routed<typeof EventType.TerminationNotice> & { instanceId: string });

/** What a group's queue holds: the events about it, as intake completed them. */
export type GroupEvent = Routed<typeof EventType.GroupChanged> | InstanceEvent;

/** The shard-wide event (the queue's barrier). */
export type InitialReconcileEvent = Omit<ReconcileEvent, 'type'> & { type: typeof EventType.InitialReconcile };

export type QueuedEvent = GroupEvent | InitialReconcileEvent;

/** Queue priority of an event: urgent facts first, the full resync last. */
export function eventPriority(event: ReconcileEvent): Priority {
  switch (event.type) {
    case EventType.TerminationNotice:
    case EventType.CheckInstance:
    case EventType.InstanceDeleted:
      return Priority.urgent;
    case EventType.DrainAcked:
      return Priority.high;
    case EventType.GroupChanged:
      return Priority.normal;
    case EventType.InitialReconcile:
      return Priority.bulk;
  }
}

/** "CheckInstance(disconnect)" — how an event is named in the audit and in logs. */
export function describeEvent(event: Pick<ReconcileEvent, 'type' | 'cause'>): string {
  return event.cause ? `${event.type}(${event.cause})` : event.type;
}

/** The key of a group: "tenant/group". */
export function groupKeyOf(tenant: string, group: string): string {
  return `${tenant}/${group}`;
}

/** Splits "tenant/group". */
export function splitGroupKey(key: string): { tenant: string; group: string } {
  const slash = key.indexOf('/');
  return { tenant: key.slice(0, slash), group: key.slice(slash + 1) };
}
