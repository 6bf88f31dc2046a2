/**
 * Scenario generator: from a seed, a random fleet (tenants, groups, sizes, drain timeouts, surge,
 * expiry ages, shard and provider settings) and a random schedule of faults and operator actions.
 *
 * A schedule is plain data. Steps name their targets indirectly (a group by index, an instance by
 * a fraction into the group's live instances, resolved when the step runs), so any subset of a
 * schedule is still a valid schedule: the shrinker relies on that.
 */
import { Rng } from './rng.js';

export const SEC = 1_000;
export const MIN = 60 * SEC;
export const HOUR = 60 * MIN;

export interface GroupSpec {
  tenant: string;
  group: string;
  size: number;
  template: string;
  drainTimeoutMs: number | null;
  maxSurge: number;
  startupTimeoutMs: number | null;
  eligibleAgeMs: number;
  forcedAgeMs: number;
  /** `disruption.cancelHold`: how long an instance whose drain was cancelled is left alone. */
  cancelHoldMs: number;
  /** `disruption.maxDrainTimeout`: no extension pushes a drain past its start + this. */
  maxDrainTimeoutMs: number | null;
}

export interface ShardSpec {
  healthCheckIntervalMs: number;
  missedHealthThreshold: number;
  startupTimeoutMs: number;
  defaultDrainTimeoutMs: number;
  createRateLimitMs: number;
  defaultNoticeWindowMs: number;
  workers: number;
  resyncIntervalMs: number;
  maxAttempts: number;
}

export interface ProviderSpec {
  callTimeoutMs: number;
  /** The provider's API limit as configured for Drover (0: none). */
  maxCallsPerSecond: number;
  /** The SimProvider's own limit; above Drover's, so throttling means a burst. */
  simMaxCallsPerSecond: number;
  createLatencyMs: number;
  deleteLatencyMs: number;
  listLatencyMs: number;
}

export interface FleetSpec {
  shard: ShardSpec;
  provider: ProviderSpec;
  groups: GroupSpec[];
  /** Template names; each starts at version 1. */
  templates: string[];
  /** An agent boots (first health report) between 2 s and this long after its instance runs. */
  bootMaxMs: number;
  /** The reconciler's `firstHealthReplanIntervalMs` (0, or the server's 250 ms). */
  firstHealthReplanMs: number;
}

export type SimOp = 'create' | 'delete' | 'status' | 'list';
export type InstanceFault = 'crash' | 'stop' | 'vanish' | 'silence' | 'disconnect' | 'notice';
export type AckTarget = 'draining' | 'running' | 'otherGroup' | 'unknown' | 'deleted' | 'noGroup';
export type OperatorOp = 'drain' | 'drainForce' | 'cancel' | 'extend' | 'force';
export type InvalidFlavor = 'negativeSize' | 'unknownTemplate' | 'badDuration' | 'unknownField' | 'expiryOrder' | 'badName' | 'notAnObject';

export type Action =
  | { kind: 'wait' }
  | { kind: 'providerFail'; op: SimOp; n: number; permanent: boolean }
  | { kind: 'providerSlow'; op: SimOp; n: number; delayMs: number }
  | { kind: 'instance'; fault: InstanceFault; group: number; pick: number; announce: boolean; durationMs: number | null }
  | { kind: 'ack'; target: AckTarget; group: number; pick: number; twice: boolean }
  | { kind: 'operator'; op: OperatorOp; group: number; pick: number; byMs: number }
  | { kind: 'scale'; group: number; size: number }
  | { kind: 'templateChange'; template: number }
  | { kind: 'switchTemplate'; group: number; template: number }
  | { kind: 'removeGroup'; group: number }
  | { kind: 'restoreGroup'; group: number }
  | { kind: 'invalidConfig'; flavor: InvalidFlavor; group: number }
  | { kind: 'loseLeadership' }
  | { kind: 'regainLeadership' }
  | { kind: 'crashRestart'; downtimeMs: number };

export interface Step {
  /** Simulated time that passes before the action. */
  dtMs: number;
  action: Action;
}

export interface Scenario {
  seed: number;
  fleet: FleetSpec;
  steps: Step[];
}

export interface GenerateOptions {
  steps?: number;
}

export const DEFAULT_STEPS = 150;

const GROUP_NAMES = ['web', 'api', 'batch', 'cache'];

function generateFleet(rng: Rng): FleetSpec {
  const healthCheckIntervalMs = rng.pick([30 * SEC, 60 * SEC]);
  const shard: ShardSpec = {
    healthCheckIntervalMs,
    missedHealthThreshold: rng.pick([2, 3]),
    startupTimeoutMs: rng.pick([3 * MIN, 5 * MIN]),
    defaultDrainTimeoutMs: rng.pick([0, 1 * MIN, 5 * MIN]),
    createRateLimitMs: rng.chance(0.7) ? 0 : rng.pick([2 * SEC, 10 * SEC]),
    defaultNoticeWindowMs: rng.pick([1 * MIN, 2 * MIN]),
    workers: rng.pick([1, 2, 16]),
    resyncIntervalMs: rng.pick([0, 5 * MIN, 10 * MIN]),
    maxAttempts: rng.pick([3, 5, 8]),
  };
  const rateLimited = rng.chance(0.2);
  const provider: ProviderSpec = {
    callTimeoutMs: rng.pick([20 * SEC, 60 * SEC]),
    maxCallsPerSecond: rateLimited ? rng.pick([2, 5]) : 0,
    simMaxCallsPerSecond: rateLimited ? 10 : rng.chance(0.1) ? 3 : 0,
    createLatencyMs: rng.pick([0, 1 * SEC, 5 * SEC, 15 * SEC]),
    deleteLatencyMs: rng.pick([0, 1 * SEC, 5 * SEC]),
    listLatencyMs: rng.chance(0.8) ? 0 : rng.pick([1 * SEC, 3 * SEC]),
  };
  const templates = ['a', 'b'];
  const tenants = rng.chance(0.6) ? ['t0'] : ['t0', 't1'];
  const groupCount = rng.int(1, 3);
  const groups: GroupSpec[] = [];
  for (let i = 0; i < groupCount; i++) {
    const tenant = tenants[i % tenants.length] ?? 't0';
    const expiry = rng.chance(0.45);
    const eligibleAgeMs = expiry ? rng.pick([1 * HOUR, 2 * HOUR, 3 * HOUR]) : 0;
    const forcedAgeMs = expiry && rng.chance(0.7) ? eligibleAgeMs + rng.pick([30 * MIN, 1 * HOUR]) : expiry ? 0 : rng.chance(0.1) ? 2 * HOUR : 0;
    groups.push({
      tenant,
      group: GROUP_NAMES[i] ?? `g${i}`,
      size: rng.chance(0.1) ? 0 : rng.chance(0.15) ? rng.int(6, 8) : rng.int(1, 5),
      template: rng.pick(templates),
      drainTimeoutMs: rng.chance(0.2) ? null : rng.pick([0, 30 * SEC, 2 * MIN, 5 * MIN, 10 * MIN]),
      maxSurge: rng.chance(0.15) ? 0 : rng.pick([1, 1, 2]),
      startupTimeoutMs: rng.chance(0.5) ? null : rng.pick([2 * MIN, 4 * MIN]),
      eligibleAgeMs,
      forcedAgeMs,
      cancelHoldMs: rng.pick([5 * MIN, 15 * MIN]),
      maxDrainTimeoutMs: rng.chance(0.5) ? null : rng.pick([10 * MIN, 20 * MIN]),
    });
  }
  return { shard, provider, groups, templates, bootMaxMs: rng.pick([20 * SEC, 60 * SEC, 90 * SEC]), firstHealthReplanMs: rng.pick([0, 250]) };
}

function generateDt(rng: Rng): number {
  const band = rng.weighted({ short: 60, medium: 32, long: 8 });
  if (band === 'short') return rng.int(1, 30) * SEC;
  if (band === 'medium') return rng.int(30, 180) * SEC;
  return rng.int(3, 15) * MIN;
}

function generateAction(rng: Rng, fleet: FleetSpec): Action {
  const group = rng.int(0, fleet.groups.length - 1);
  const pick = rng.next();
  const kind = rng.weighted({
    wait: 22,
    providerFail: 8,
    providerSlow: 4,
    instance: 26,
    ack: 6,
    operator: 5,
    scale: 8,
    templateChange: 3,
    switchTemplate: 2,
    removeGroup: 1.5,
    restoreGroup: 2,
    invalidConfig: 2,
    loseLeadership: 2.5,
    regainLeadership: 4,
    crashRestart: 4,
  });
  switch (kind) {
    case 'wait':
      return { kind };
    case 'providerFail':
      return { kind, op: rng.pick<SimOp>(['create', 'create', 'delete', 'delete', 'status', 'list']), n: rng.int(1, 4), permanent: rng.chance(0.3) };
    case 'providerSlow':
      return { kind, op: rng.pick<SimOp>(['create', 'create', 'delete', 'status', 'list']), n: rng.int(1, 3), delayMs: rng.pick([3 * SEC, 10 * SEC, 90 * SEC]) };
    case 'instance': {
      const fault = rng.weighted<InstanceFault>({ crash: 5, stop: 3, vanish: 3, silence: 4, disconnect: 4, notice: 4 });
      const durationMs =
        fault === 'silence' || fault === 'disconnect'
          ? rng.chance(0.3)
            ? null
            : rng.pick([20 * SEC, 2 * MIN, 10 * MIN])
          : fault === 'notice'
            ? rng.chance(0.25)
              ? null
              : rng.pick([30 * SEC, 2 * MIN, 5 * MIN])
            : null;
      return { kind, fault, group, pick, announce: rng.chance(0.5), durationMs };
    }
    case 'ack':
      return { kind, target: rng.weighted<AckTarget>({ draining: 4, running: 2, otherGroup: 1, unknown: 1, deleted: 1, noGroup: 1 }), group, pick, twice: rng.chance(0.3) };
    case 'operator':
      return { kind, op: rng.weighted<OperatorOp>({ drain: 3, drainForce: 1, cancel: 3, extend: 2, force: 1 }), group, pick, byMs: rng.pick([1 * MIN, 5 * MIN, 15 * MIN]) };
    case 'scale':
      return { kind, group, size: rng.chance(0.1) ? 0 : rng.int(1, 8) };
    case 'templateChange':
      return { kind, template: rng.int(0, fleet.templates.length - 1) };
    case 'switchTemplate':
      return { kind, group, template: rng.int(0, fleet.templates.length - 1) };
    case 'removeGroup':
    case 'restoreGroup':
      return { kind, group };
    case 'invalidConfig':
      return {
        kind,
        group,
        flavor: rng.pick<InvalidFlavor>(['negativeSize', 'unknownTemplate', 'badDuration', 'unknownField', 'expiryOrder', 'badName', 'notAnObject']),
      };
    case 'loseLeadership':
    case 'regainLeadership':
      return { kind };
    case 'crashRestart':
      return { kind, downtimeMs: rng.chance(0.4) ? 0 : rng.pick([5 * SEC, 1 * MIN, 5 * MIN]) };
  }
}

/** The scenario of a seed: same seed, same scenario. */
export function generateScenario(seed: number, options: GenerateOptions = {}): Scenario {
  const rng = new Rng(seed);
  const fleet = generateFleet(rng);
  const count = options.steps ?? DEFAULT_STEPS;
  const steps: Step[] = [];
  for (let i = 0; i < count; i++) steps.push({ dtMs: generateDt(rng), action: generateAction(rng, fleet) });
  return { seed, fleet, steps };
}

/** One line for an action (the trace's step description). */
export function describeAction(action: Action, fleet: FleetSpec): string {
  const g = (i: number): string => {
    const spec = fleet.groups[i];
    return spec ? `${spec.tenant}/${spec.group}` : `group#${i}`;
  };
  switch (action.kind) {
    case 'wait':
      return 'wait';
    case 'providerFail':
      return `provider: next ${action.n} ${action.op} call(s) fail${action.permanent ? ' permanently' : ''}`;
    case 'providerSlow':
      return `provider: next ${action.n} ${action.op} call(s) take ${action.delayMs / SEC}s longer`;
    case 'instance':
      return `${action.fault} an instance of ${g(action.group)} (pick ${action.pick.toFixed(3)}${action.announce ? ', announced' : ''}${action.durationMs === null ? '' : `, ${action.durationMs / SEC}s`})`;
    case 'ack':
      return `drain ack for a ${action.target} instance of ${g(action.group)}${action.twice ? ' (twice)' : ''}`;
    case 'operator':
      return `operator: ${action.op}${action.op === 'extend' ? ` by ${action.byMs / SEC}s` : ''} an instance of ${g(action.group)}`;
    case 'scale':
      return `config: ${g(action.group)} size ${action.size}`;
    case 'templateChange':
      return `config: template ${fleet.templates[action.template] ?? action.template} changes`;
    case 'switchTemplate':
      return `config: ${g(action.group)} uses template ${fleet.templates[action.template] ?? action.template}`;
    case 'removeGroup':
      return `config: ${g(action.group)} removed`;
    case 'restoreGroup':
      return `config: ${g(action.group)} restored`;
    case 'invalidConfig':
      return `config: invalid (${action.flavor})`;
    case 'loseLeadership':
      return 'leadership lost';
    case 'regainLeadership':
      return 'leadership regained';
    case 'crashRestart':
      return `reconciler crashes, restarts after ${action.downtimeMs / SEC}s`;
  }
}
