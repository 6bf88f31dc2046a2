export { EventType, EVENT_TYPES, describeEvent, eventPriority, groupKeyOf, splitGroupKey } from './events.js';
export type { ReconcileEvent } from './events.js';
export { planGroup, INVOLUNTARY_REASONS } from './plan.js';
export type { Block, BlockCode, DrainReason, GroupSummary, Plan, PlanAction, PlanInput, ShardHealthSettings } from './plan.js';
export { Reconciler } from './reconciler.js';
export type { ReconcilerOptions } from './reconciler.js';
export type { ReconcilerObserver } from './context.js';
export type { Logger, ReconcilerStore } from './ports.js';
export { backoffDelay, DISCONNECT_POLL_DELAYS_MS } from './backoff.js';
