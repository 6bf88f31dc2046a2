/**
 * The decision core's public face: `planGroup` and its types. The planner itself is in plan/, one
 * module per phase (see plan/index.ts).
 */
export { planGroup, healthBrake, pickVictims } from './plan/index.js';
export type { Block, BlockCode, GroupSummary, PhaseResult, Plan, PlanAction, PlanInput, ShardHealthSettings } from './plan/index.js';
export { HEALTH, INVOLUNTARY } from './plan/frame.js';
export type { DrainReason, RotationReason } from './reasons.js';

import { HEALTH, INVOLUNTARY } from './plan/frame.js';

/** Reasons for which an instance leaves involuntarily; its replacement is urgent. */
export const INVOLUNTARY_REASONS: ReadonlySet<string> = INVOLUNTARY;
/** Reasons an instance leaves for its health: what the health brake counts. */
export const HEALTH_REASONS: ReadonlySet<string> = HEALTH;
