/**
 * Keys the reconciler stores in SQLite: durable timers and create holds. Built here and only
 * here, so that two kinds of key can never share a prefix by accident.
 */
import type { EventType } from './events.js';

/** Durable timer keys (the `timers` table). At most one timer per key. */
export const TimerKey = {
  /** A group's next wake-up: when its plan changes by the passage of time alone. */
  wake: (groupKey: string): string => `wake:${groupKey}`,
  /** The next re-poll of an instance whose agent disconnected. */
  poll: (groupKey: string, instanceId: string): string => `poll:${groupKey}:${instanceId}`,
  /** The next attempt of a failed event handler. */
  retry: (type: EventType, groupKey: string, instanceId: string | undefined): string => `retry:${type}:${groupKey}:${instanceId ?? ''}`,
  /** The next full provider sync. */
  resync: 'resync',
} as const;

/**
 * Create-hold keys (`group_state.hold_key`): a hold stands while the group keeps the size and
 * template it was set for.
 */
export const HoldKey = {
  /** After a permanent provider error: held until the size or template changes. */
  permanent: (size: number, templateHash: string): string => `${size}|${templateHash}`,
  /** After retries ran out: held for a pause (one resync interval), then tried again. */
  afterRetries: (size: number, templateHash: string): string => `afterRetries:${size}|${templateHash}`,
} as const;
