/**
 * The checker's own reading of the reconciler's vocabulary: what each reason means for the
 * invariants, and the names of the provider tags it reads.
 *
 * The names come from `src/reconciler/reasons.ts`, the reconciler's single declared list of
 * reasons (a list of names, not logic). What each one means is decided here, from README.md and
 * sim/README.md, not taken from the reconciler's own sets: `CLASSES` is a Record over every
 * declared reason, so a reason added to the reconciler does not compile here until the checker
 * says what it is (and test/sim/vocabulary.test.ts checks the same at run time).
 */
import {
  CANCEL_REASONS,
  CREATE_REASONS,
  DELETE_REASONS,
  DRAIN_REASONS,
  FORGET_REASONS,
  INVOLUNTARY_REASONS,
  ROTATION_REASONS,
  VOLUNTARY_REASONS,
  type Reason,
} from '../src/reconciler/reasons.js';

/** Every reason the reconciler declares it may write, once each. */
export const DECLARED_REASONS: readonly Reason[] = [
  ...new Set<Reason>([...DRAIN_REASONS, ...DELETE_REASONS, ...CANCEL_REASONS, ...FORGET_REASONS, ...CREATE_REASONS, ...VOLUNTARY_REASONS, ...ROTATION_REASONS, ...INVOLUNTARY_REASONS]),
];

/** What a reason means to the checker. */
export interface ReasonClass {
  /**
   * Voluntary (README.md, "Controlling disruption": a choice Drover could postpone): counted by
   * budgets (invariant 7) and never used on a protected instance (invariant 9).
   */
  voluntary: boolean;
  /** A rotation: replacement first (invariant 2), and the only drains an operator may cancel (invariant 3). */
  rotation: boolean;
  /** An involuntary departure: its replacement is urgent. */
  involuntary: boolean;
  /** A departure for health: an instance being deleted for it counts as unhealthy for the brake (invariant 8). */
  healthLoss: boolean;
  /** A health action the brake holds (invariant 8), when it is the decision about a serving instance. */
  healthAction: boolean;
  /** A legitimate end of a drain by a delete (invariant 3): acknowledged, deadline passed, or terminated by the provider. */
  endsDrain: boolean;
}

const NONE: ReasonClass = { voluntary: false, rotation: false, involuntary: false, healthLoss: false, healthAction: false, endsDrain: false };
const ROTATION: ReasonClass = { ...NONE, voluntary: true, rotation: true };

export const CLASSES: Readonly<Record<Reason, ReasonClass>> = {
  // Voluntary: scaling, and the three rotations.
  scaleDown: { ...NONE, voluntary: true },
  expiry: ROTATION,
  drift: ROTATION,
  operator: ROTATION,
  // A removed group drains to zero: not voluntary in the budgets' sense (a removed group has none).
  groupRemoved: NONE,
  // Involuntary: health, the provider, lifetime ceilings.
  unhealthy: { ...NONE, involuntary: true, healthLoss: true, healthAction: true },
  terminated: { ...NONE, involuntary: true, healthLoss: true, healthAction: true, endsDrain: true },
  startupTimeout: { ...NONE, involuntary: true, healthLoss: true, healthAction: true },
  vanished: { ...NONE, involuntary: true, healthLoss: true },
  terminationNotice: { ...NONE, involuntary: true },
  expiryForced: { ...NONE, involuntary: true },
  // A launch hook abandoned (or timed out so): the instance never served; not a health loss.
  launchHookAbandoned: { ...NONE, involuntary: true },
  // The ends of a drain.
  drainAcked: { ...NONE, endsDrain: true },
  drainDeadline: { ...NONE, endsDrain: true },
  // Cleaning up, and creates that replace nothing.
  cancelled: NONE,
  createFailed: NONE,
  leak: NONE,
  scaleUp: NONE,
  adopted: NONE,
};

/** The checker's class of a reason written by the reconciler (an unknown one is none of these). */
export function classOf(reason: string | null | undefined): ReasonClass {
  return reason !== null && reason !== undefined && Object.hasOwn(CLASSES, reason) ? CLASSES[reason as Reason] : NONE;
}

export const isVoluntary = (reason: string | null | undefined): boolean => classOf(reason).voluntary;
export const isRotation = (reason: string | null | undefined): boolean => classOf(reason).rotation;
export const isInvoluntary = (reason: string | null | undefined): boolean => classOf(reason).involuntary;
export const isHealthLoss = (reason: string | null | undefined): boolean => classOf(reason).healthLoss;

/**
 * The provider tags the checker reads. README.md ("Shared truth") says instances carry their
 * shard, tenant, group and instance id as tags; the names are the checker's own constants: tags are a
 * contract with what is already at the provider, so a tag renamed in src/ shows up here as
 * instances that belong to no group (and as leaks).
 */
export const TAGS = {
  /** The shard (README.md: a shard only touches instances tagged with its id; Drover lists by it). */
  shard: 'drover:shard',
  tenant: 'drover:tenant',
  group: 'drover:group',
  instanceId: 'drover:instance-id',
} as const;

/**
 * Provider statuses an instance does not come back from (README.md: stopped or terminated at the
 * provider; gone). Anything else (pending, running) may still serve.
 */
export function isTerminal(status: string): boolean {
  return status !== 'pending' && status !== 'running';
}
