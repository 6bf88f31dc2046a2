/**
 * The reconciler's vocabulary of reasons: every reason it writes on an instance (`drainReason`,
 * `deleteReason`, `createReason`) or in the audit of a create, drain, delete, cancel or forget,
 * declared once. The code that decides uses these lists; tools that read the audit (the
 * simulator's checker among them) take the names from here and decide for themselves what each
 * means, so that a reason added here is one they must account for.
 *
 * Names only: which reason applies when is decided in plan.ts, executor.ts and sync.ts.
 */
import { VOLUNTARY_REASONS, type VoluntaryReason } from '../config/index.js';
import { InternalError } from '../errors/index.js';

/** Voluntary reasons: choices Drover could postpone, counted by disruption budgets (declared with the config, whose `reasons` field names them). */
export { VOLUNTARY_REASONS, type VoluntaryReason };

/** Rotations: replacement first, then the old instance drains. An operator may cancel one. */
export const ROTATION_REASONS = ['operator', 'drift', 'expiry'] as const;
export type RotationReason = (typeof ROTATION_REASONS)[number];

/**
 * Reasons for which an instance leaves involuntarily; its replacement is urgent.
 * `launchHookAbandoned`: its launch hook was completed with abandon (or timed out with
 * `onTimeout: abandon`); it never served, so it is deleted without a drain.
 */
export const INVOLUNTARY_REASONS = ['unhealthy', 'terminated', 'vanished', 'startupTimeout', 'terminationNotice', 'expiryForced', 'launchHookAbandoned'] as const;
export type InvoluntaryReason = (typeof INVOLUNTARY_REASONS)[number];

/**
 * Reasons an instance leaves for its health: what the health brake counts (termination notices
 * and forced expiry are involuntary too, but say nothing about the fleet's health).
 */
export const HEALTH_REASONS = ['unhealthy', 'terminated', 'vanished', 'startupTimeout'] as const satisfies readonly InvoluntaryReason[];
export type HealthReason = (typeof HEALTH_REASONS)[number];

/** Why an instance is drained (a drain whose timeout is 0 is a delete for the same reason). */
export const DRAIN_REASONS = ['scaleDown', 'groupRemoved', 'unhealthy', 'terminationNotice', 'expiry', 'expiryForced', 'drift', 'operator'] as const;
export type DrainReason = (typeof DRAIN_REASONS)[number];

/**
 * Why an instance is deleted: a drain reason (drain timeout 0), the end of a drain (acknowledged,
 * past its deadline, or terminated by the provider), a health or lifetime decision, or cleaning
 * up (a cancelled or failed create, a leak found again, an instance gone at the provider).
 */
export const DELETE_REASONS = [
  ...DRAIN_REASONS,
  'drainAcked',
  'drainDeadline',
  'terminated',
  'startupTimeout',
  'cancelled',
  'createFailed',
  'leak',
  'vanished',
  'launchHookAbandoned',
] as const;
export type DeleteReason = (typeof DELETE_REASONS)[number];

/** Why a create not yet confirmed is cancelled (the group shrank, or was removed). */
export const CANCEL_REASONS = ['scaleDown', 'groupRemoved'] as const;
export type CancelReason = (typeof CANCEL_REASONS)[number];

/** Why an instance is forgotten (marked deleted without a delete call). */
export const FORGET_REASONS = ['vanished'] as const;
export type ForgetReason = (typeof FORGET_REASONS)[number];

/**
 * Why an instance is created: to reach the size, to replace one that left involuntarily, as a
 * rotation's replacement; or adopted (found at the provider, created by another leader).
 */
export const CREATE_REASONS = ['scaleUp', 'adopted', ...ROTATION_REASONS, ...INVOLUNTARY_REASONS] as const;
export type CreateReason = (typeof CREATE_REASONS)[number];

/** Every reason the reconciler may write on an instance or with one of those actions. */
export type Reason = DrainReason | DeleteReason | CancelReason | ForgetReason | CreateReason | VoluntaryReason | RotationReason | InvoluntaryReason;

/** `reason` is one of `list` (a type guard over the lists above). */
export function isOneOf<const T extends string>(list: readonly T[], reason: string | null | undefined): reason is T {
  return reason !== null && reason !== undefined && (list as readonly string[]).includes(reason);
}

/**
 * Reads a reason back from the store: `value` must be one of `list`. The store is written only
 * through typed records, so anything else means the database was changed behind Drover's back.
 */
export function storedReason<const T extends string>(list: readonly T[], value: unknown, field: string): T {
  if (typeof value === 'string' && (list as readonly string[]).includes(value)) return value as T;
  throw new InternalError(`reading ${field} from the store: ${JSON.stringify(value)} is not a reason Drover writes`);
}
