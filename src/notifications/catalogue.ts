/**
 * The notification events Drover sends to webhooks, and the audit actions each comes from. Pure
 * data: the config schema, the router and the docs read it.
 */
import type { AuditAction } from '../store/types.js';

export const NOTIFICATION_EVENT_TYPES = [
  /** A termination notice from the cloud reached Drover (before the drain it causes). */
  'noticeReceived',
  /** Drover started draining an instance (any reason: notice, unhealthy, expiry, drift, scale-down, operator). */
  'drainStarted',
  /** A drain's deadline is near: a fifth of its time (at most 5 minutes) is left and it is not acknowledged. */
  'drainDeadlineNear',
  /** A drain was acknowledged by the instance or an operator. */
  'drainAcked',
  /** An instance was judged unhealthy. */
  'instanceUnhealthy',
  /** The provider confirmed a new instance. */
  'instanceCreated',
  /** An instance is gone: deleted by Drover, or found gone at the provider. */
  'instanceDeleted',
  /** A group went above maxUnhealthy: automatic replacement for health is paused. */
  'shortCircuit',
  /** The group is back under maxUnhealthy. */
  'shortCircuitEnded',
  /** A provider call to create or delete an instance failed (it is retried). */
  'providerError',
  /** A group's size changed (operator, schedule, autoscale, sleep or wake). */
  'groupResized',
  /** Sent by `drover notifications test`, to this endpoint only. */
  'test',
] as const;

export type NotificationEventType = (typeof NOTIFICATION_EVENT_TYPES)[number];

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
};
