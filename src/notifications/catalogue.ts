/**
 * The audit actions each notification event comes from. Pure data, read by the router and the
 * docs; the event list itself is in src/config/notification-events.ts (the schema needs it).
 */
import { NOTIFICATION_EVENT_TYPES, type NotificationEventType } from '../config/notification-events.js';
import type { AuditAction } from '../store/types.js';

export { NOTIFICATION_EVENT_TYPES, type NotificationEventType };

/** The audit actions that are notification events, and the event each one is. */
export const EVENT_OF_AUDIT_ACTION: Readonly<Partial<Record<AuditAction, NotificationEventType>>> = {
  notice: 'noticeReceived',
  drain: 'drainStarted',
  drainAcked: 'drainAcked',
  unhealthy: 'instanceUnhealthy',
  created: 'instanceCreated',
  deleted: 'instanceDeleted',
  vanished: 'instanceDeleted',
  brakeTripped: 'shortCircuit',
  brakeReleased: 'shortCircuitEnded',
  createFailed: 'providerError',
  deleteFailed: 'providerError',
  scale: 'groupResized',
  sleep: 'groupResized',
  wake: 'groupResized',
  launchHookContinued: 'launchHookCompleted',
  launchHookAbandoned: 'launchHookCompleted',
  launchHookTimedOut: 'launchHookCompleted',
};
