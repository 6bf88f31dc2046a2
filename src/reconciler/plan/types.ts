/**
 * The plan's vocabulary: what a plan is (actions, blocks, a wake-up time, a summary), what it is
 * planned from (PlanInput), and what each phase of the planner returns (PhaseResult).
 */
import type { GroupSettings, LaunchHookResult, VoluntaryReason } from '../../config/index.js';
import type { Priority } from '../../queue/priority.js';
import type { InstanceRecord } from '../../store/types.js';
import type { ReasonBudget } from '../disruption.js';
import type { CancelReason, CreateReason, DeleteReason, DrainReason, ForgetReason } from '../reasons.js';
import type { SizeDecision } from '../sizing.js';

export type PlanAction =
  | { kind: 'create'; reason: CreateReason; replaces: string | null; priority: Priority; message: string }
  | { kind: 'dispatchCreate'; instanceId: string; priority: Priority; message: string }
  | { kind: 'cancelCreate'; instanceId: string; reason: CancelReason; message: string }
  | { kind: 'drain'; instanceId: string; reason: DrainReason; deadline: Date; unhealthyAt: Date | null; message: string }
  | { kind: 'delete'; instanceId: string; reason: DeleteReason; priority: Priority; message: string }
  | { kind: 'dispatchDelete'; instanceId: string; message: string }
  | { kind: 'forget'; instanceId: string; reason: ForgetReason; message: string }
  | { kind: 'check'; instanceId: string; cause: string; message: string }
  /**
   * Completes a pending launch hook that nobody completed: its timeout passed (`onTimeout`
   * decides), or the group no longer has a launch hook (continue). The plan after an abandon
   * deletes the instance (reason launchHookAbandoned).
   */
  | { kind: 'launchHook'; instanceId: string; result: LaunchHookResult; cause: 'timeout' | 'unconfigured'; message: string };

export type BlockCode =
  | 'NotLeader'
  | 'SurgeCap'
  | 'RateLimited'
  | 'WaitingForHealthy'
  | 'DrainInProgress'
  | 'ProviderErrors'
  | 'BudgetExhausted'
  | 'ShortCircuit'
  | 'Protected'
  | 'RotationHeld'
  | 'RemovalPending'
  | 'HealthSettling'
  | 'AutoscaleBlocked'
  /** A new instance waits for its launch hook to be completed before it counts as in service. */
  | 'LaunchHookPending';

export interface Block {
  code: BlockCode;
  message: string;
  instanceId?: string;
  /** The instances a block is about, when several (the brake's unhealthy ones). */
  instanceIds?: string[];
  since?: Date;
  until?: Date;
}

export interface GroupSummary {
  size: number;
  /** Instances at the provider or about to be (not deleted). */
  live: number;
  /** Running, reported healthy, not leaving. */
  inService: number;
  /** Being created or booting (never reported healthy) or waiting for its launch hook, not leaving. */
  pending: number;
  /** Of `pending`: running instances whose launch hook is not completed yet. */
  launchHookPending: number;
  draining: number;
  /** Judged or observed unhealthy (dead, silent, stopped), not yet deleted. */
  unhealthy: number;
  /** The surge cap: size + maxSurge. */
  maxLive: number;
  /** Disruption controls in force: budgets per voluntary reason and the health brake. */
  disruption: {
    budgets: Record<VoluntaryReason, ReasonBudget>;
    shortCircuited: boolean;
    maxUnhealthy: number | null;
    /** What the brake counts: unhealthy instances, and those recently replaced for health (unhealthyWindow). */
    brakeCount: number;
  };
}

export interface Plan {
  tenant: string;
  group: string;
  configured: boolean;
  actions: PlanAction[];
  blocked: Block[];
  /** When the plan's answer changes by the passage of time alone (a deadline, an age, a schedule, a health report going stale), if ever. */
  wakeAt: Date | null;
  /**
   * Set when `wakeAt` is only for health reports going stale: no other wake-up comes before it.
   * Until `otherWakeAt`, the plan then changes by time alone only once some running instance's
   * last report is older than `staleAfterMs` (from when the reconciler began observing), which
   * the store answers without reading the group: a big group whose agents keep reporting need
   * not be planned every time its oldest report nears the threshold (bench B5).
   */
  silenceWake: { otherWakeAt: Date | null; staleAfterMs: number } | null;
  summary: GroupSummary;
  /** What sets the group's size and why (null for a group no longer configured, or planned without it). */
  sizing: SizeDecision | null;
}

export interface ShardHealthSettings {
  healthCheckIntervalMs: number;
  missedHealthThreshold: number;
  defaultDrainTimeoutMs: number;
}

export interface PlanInput {
  tenant: string;
  group: string;
  /** The group's effective settings, or null when it is no longer configured (drain it to zero). */
  settings: GroupSettings | null;
  shard: ShardHealthSettings;
  /** The group's instances that are not deleted. */
  instances: readonly InstanceRecord[];
  /** Instances of the group deleted recently (to say what a new instance replaces). */
  departed?: readonly InstanceRecord[];
  /** Instances with a provider call in flight in this process (not to be dispatched again). */
  inFlight: { has(instanceId: string): boolean };
  now: number;
  /**
   * Since when health reports have been received. Silence before it is not held against an
   * instance: after a restart every agent gets one full health threshold to report.
   */
  observingSince: number;
  /** When set, creates are held for this reason (a permanent provider error). */
  createHold: string | null;
  /** When a hold ends by itself (a pause after retries ran out); null = on a change only. */
  createHoldUntil?: number | null;
  /** Provider attempts after which a step is given up. */
  maxAttempts: number;
  /** Instances protected from voluntary disruption, until the given epoch ms. */
  protectedUntil?: ReadonlyMap<string, number>;
  /** Instances whose rotation or operator drain was cancelled: not picked again until the given epoch ms. */
  rotationHolds?: ReadonlyMap<string, number>;
  /** Operator drain requests (replacement first); `force` ignores the budget. */
  drainRequests?: ReadonlyMap<string, { force: boolean }>;
  /**
   * For a group no longer configured: until when its removal waits (groupRemovalGrace). Until
   * then nothing new is done to it — no drain, no replacement — only work already under way
   * finishes; a config that brings the group back meanwhile loses nothing.
   */
  removalPendingUntil?: number | null;
  /** The size decision `settings.size` came from (schedules, sleep, autoscale), shown with the plan. */
  sizing?: SizeDecision | null;
}

/**
 * What each phase of the planner returns: its actions and blocks, the earliest time its answer
 * changes by the passage of time alone, and the instances it takes out of service (with why).
 * Phases return values; none changes another's state.
 */
export interface PhaseResult {
  actions: PlanAction[];
  blocked: Block[];
  /** Wake-ups for other reasons. */
  wakeAt: number | null;
  /** When the earliest running instance's last health report goes stale (see `Plan.silenceWake`). */
  silenceWakeAt?: number | null;
  leaving: ReadonlyMap<string, string>;
}
