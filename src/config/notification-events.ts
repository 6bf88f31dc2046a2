/**
 * The notification events Drover sends to webhooks (src/notifications). Pure data, in config
 * because the schema validates an endpoint's `events` against it and config sits below the
 * notifier in the layering.
 */
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
  /**
   * An instance's launch hook was completed: by an operator or the instance (continue or
   * abandon), or by its timeout (`launchHook: { result, timedOut }` in the event).
   */
  'launchHookCompleted',
  /** Sent by `drover notifications test`, to this endpoint only. */
  'test',
] as const;

export type NotificationEventType = (typeof NOTIFICATION_EVENT_TYPES)[number];
