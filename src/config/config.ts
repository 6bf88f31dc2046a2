/**
 * Validated configuration and the per-group settings the reconciler works from.
 */
import { createHash } from 'node:crypto';
import type { z } from 'zod';
import { ConfigError, type ConfigIssue } from '../errors/index.js';
import { parseDuration } from './duration.js';
import { AGENT_PING_MISSES, configSchema, type LAUNCH_HOOK_RESULTS, type ParsedConfig, type Quantity, type VoluntaryReason } from './schema.js';

export type DroverConfig = ParsedConfig;
export type ShardConfig = ParsedConfig['shard'];
export type TemplateSpec = Record<string, unknown>;

// ConfigError lives in the error catalogue (src/errors); re-exported here, where it was first.
export { ConfigError, type ConfigIssue };

/** Formats a zod path as config users write it: `groups.default.web.budgets[1].schedule`. */
export function formatPath(path: readonly PropertyKey[]): string {
  let out = '';
  for (const key of path) {
    if (typeof key === 'number') out += `[${key}]`;
    else out += out === '' ? String(key) : `.${String(key)}`;
  }
  return out;
}

function issueMessage(issue: z.core.$ZodIssue): ConfigIssue[] {
  const path = formatPath(issue.path);
  if (issue.code === 'unrecognized_keys') {
    return issue.keys.map((key) => ({ path: path ? `${path}.${key}` : key, message: 'is not a known field' }));
  }
  if (issue.code === 'invalid_key' && issue.issues.length > 0) {
    // A bad record key (tenant, group or template name): say what a name may be.
    return issue.issues.map((inner) => ({ path, message: inner.message }));
  }
  if (issue.code === 'invalid_type' && issue.input === undefined) {
    return [{ path, message: 'is required' }];
  }
  if (issue.code === 'invalid_union' && issue.errors.length > 0 && issue.message === 'Invalid input') {
    // Report the most specific branch failure instead of "invalid input" (a union with its own
    // message, such as a duration, says what it wants instead).
    const inner = issue.errors.flat()[0];
    if (inner) return issueMessage({ ...inner, path: [...issue.path, ...inner.path] });
  }
  return [{ path, message: issue.message }];
}

export type ParseResult = { ok: true; config: DroverConfig } | { ok: false; error: ConfigError };

/** Validates a plain object (parsed YAML or literal) as a Drover config. */
export function parseConfig(input: unknown, source = 'config'): ParseResult {
  // An empty document (an empty or whitespace-only file, "---", "null") is a truncated or
  // half-saved file far more often than a wish to manage nothing: refuse it.
  if (input === null || input === undefined) {
    return { ok: false, error: new ConfigError([{ path: '', message: 'the config is empty (an empty file, "---" or null); the config in force stays' }], source) };
  }
  if (!isRecord(input)) {
    return { ok: false, error: new ConfigError([{ path: '', message: `must be a mapping of sections (shard, groups, templates, ...), not ${Array.isArray(input) ? 'a list' : typeof input}` }], source) };
  }
  // `reportInput` keeps each issue's input, which tells a missing field from a wrong value.
  const result = configSchema.safeParse(input, { reportInput: true });
  if (result.success) return { ok: true, config: result.data };
  const issues = result.error.issues.flatMap(issueMessage);
  for (const extra of crossFieldIssues(input)) if (!issues.some((i) => i.path === extra.path)) issues.push(extra);
  return { ok: false, error: new ConfigError(issues, source) };
}

const isRecord = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);

/**
 * Problems between fields (a group naming a template that is not defined, expiry ages out of
 * order) that the schema's refinement finds only once every field parses. Looked for in the input
 * as written, so that a config with other problems lists these too.
 */
function crossFieldIssues(input: unknown): ConfigIssue[] {
  const issues: ConfigIssue[] = [];
  if (!isRecord(input)) return issues;
  const templates = isRecord(input.templates) ? input.templates : {};
  const age = (value: unknown, fallback: number): number => (typeof value === 'string' || typeof value === 'number' ? (parseDuration(value) ?? 0) : fallback);
  const shardExpiry = isRecord(input.shard) && isRecord(input.shard.expiry) ? input.shard.expiry : {};
  const shardEligible = age(shardExpiry.eligibleAge, 0);
  const shardForced = age(shardExpiry.forcedAge, 0);
  const outOfOrder = (eligible: number, forced: number): boolean => eligible > 0 && forced > 0 && eligible >= forced;
  if (outOfOrder(shardEligible, shardForced)) issues.push({ path: 'shard.expiry.forcedAge', message: 'must be longer than eligibleAge' });
  for (const [tenant, groups] of Object.entries(isRecord(input.groups) ? input.groups : {})) {
    for (const [name, group] of Object.entries(isRecord(groups) ? groups : {})) {
      if (!isRecord(group)) continue;
      const { template, expiry } = group;
      if (typeof template === 'string' && template !== '' && !Object.hasOwn(templates, template)) {
        issues.push({ path: formatPath(['groups', tenant, name, 'template']), message: `names template "${template}", which is not defined under templates` });
      }
      if (isRecord(expiry) && outOfOrder(age(expiry.eligibleAge, shardEligible), age(expiry.forcedAge, shardForced))) {
        issues.push({ path: formatPath(['groups', tenant, name, 'expiry', 'forcedAge']), message: 'must be longer than eligibleAge' });
      }
    }
  }
  return issues;
}

/** JSON with object keys sorted, so equal templates hash equally whatever their key order. */
function canonicalJson(value: unknown): string {
  if (Array.isArray(value)) return `[${value.map(canonicalJson).join(',')}]`;
  if (value && typeof value === 'object') {
    const entries = Object.entries(value as Record<string, unknown>)
      .filter(([, v]) => v !== undefined)
      .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
    return `{${entries.map(([k, v]) => `${JSON.stringify(k)}:${canonicalJson(v)}`).join(',')}}`;
  }
  return JSON.stringify(value) ?? 'null';
}

/** Short content hash of a template; a change in it is drift. */
export function templateHash(template: TemplateSpec): string {
  return createHash('sha256').update(canonicalJson(template)).digest('hex').slice(0, 16);
}

/** Everything the reconciler needs to know about one group, with shard defaults applied. */
export interface GroupSettings {
  tenant: string;
  group: string;
  size: number;
  templateName: string;
  template: TemplateSpec;
  templateHash: string;
  drainTimeoutMs: number;
  maxSurge: number;
  startupTimeoutMs: number;
  eligibleAgeMs: number;
  forcedAgeMs: number;
  disruption: DisruptionSettings;
  /** The group's launch hook, or null: new instances are in service once they report health. */
  launchHook: LaunchHookSettings | null;
}

/** How a launch hook is completed; also what completes one that nobody completed in time. */
export type LaunchHookResult = (typeof LAUNCH_HOOK_RESULTS)[number];

export interface LaunchHookSettings {
  /** From the provider's confirmation of the create until the hook times out. */
  timeoutMs: number;
  onTimeout: LaunchHookResult;
}

/** A budget as the reconciler uses it (`index` is its position in the config, for messages). */
export interface BudgetSpec {
  index: number;
  max: Quantity;
  reasons: readonly VoluntaryReason[];
  window: { schedule: string; durationMs: number; timezone: string } | null;
}

export interface DisruptionSettings {
  budgets: readonly BudgetSpec[];
  maxUnhealthy: Quantity | null;
  maxDrainTimeoutMs: number | null;
  cancelHoldMs: number;
  /** With maxUnhealthy: how long after an instance is judged unhealthy it is acted on. */
  healthSettleMs: number;
  /** With maxUnhealthy: how long an instance replaced for health keeps counting toward the brake. */
  unhealthyWindowMs: number;
}

/**
 * The cap on drain extensions when a group sets no `maxDrainTimeout`: no extension pushes a drain
 * past its start + 24h (or + its drainTimeout, when that is longer).
 */
export const DEFAULT_MAX_DRAIN_TIMEOUT_MS = 24 * 3_600_000;

/** The extension cap in force for a group's drains (see DEFAULT_MAX_DRAIN_TIMEOUT_MS). */
export function maxDrainTimeoutOf(settings: Pick<GroupSettings, 'drainTimeoutMs' | 'disruption'>): number {
  return settings.disruption.maxDrainTimeoutMs ?? Math.max(DEFAULT_MAX_DRAIN_TIMEOUT_MS, settings.drainTimeoutMs);
}

/** No budget and no brake (settle and window matter only with a brake). */
export const NO_DISRUPTION_LIMITS: DisruptionSettings = { budgets: [], maxUnhealthy: null, maxDrainTimeoutMs: null, cancelHoldMs: 3_600_000, healthSettleMs: 0, unhealthyWindowMs: 0 };

/** The brake's settle delay and window when a group does not set them (see the schema). */
export function brakeTimingDefaults(shard: Pick<ShardConfig, 'healthCheckInterval' | 'missedHealthThreshold'>): { healthSettleMs: number; unhealthyWindowMs: number } {
  return {
    healthSettleMs: shard.healthCheckInterval * (1 + AGENT_PING_MISSES),
    unhealthyWindowMs: 3 * shard.healthCheckInterval * shard.missedHealthThreshold,
  };
}

/** The effective settings of a configured group, or null when the config has no such group. */
export function groupSettings(config: DroverConfig, tenant: string, group: string): GroupSettings | null {
  const groups = Object.hasOwn(config.groups, tenant) ? config.groups[tenant] : undefined;
  const spec = groups && Object.hasOwn(groups, group) ? groups[group] : undefined;
  if (!spec) return null;
  const template = Object.hasOwn(config.templates, spec.template) ? (config.templates[spec.template] ?? {}) : {};
  return {
    tenant,
    group,
    size: spec.size,
    templateName: spec.template,
    template,
    templateHash: templateHash(template),
    drainTimeoutMs: spec.drainTimeout ?? config.shard.defaultDrainTimeout,
    maxSurge: spec.maxSurge,
    startupTimeoutMs: spec.startupTimeout ?? config.shard.startupTimeout,
    eligibleAgeMs: spec.expiry?.eligibleAge ?? config.shard.expiry.eligibleAge,
    forcedAgeMs: spec.expiry?.forcedAge ?? config.shard.expiry.forcedAge,
    disruption: spec.disruption
      ? {
          budgets: spec.disruption.budgets.map((b, index) => ({
            index,
            max: b.max,
            reasons: b.reasons,
            window: b.schedule !== undefined && b.duration !== undefined ? { schedule: b.schedule, durationMs: b.duration, timezone: b.timezone } : null,
          })),
          maxUnhealthy: spec.disruption.maxUnhealthy ?? null,
          maxDrainTimeoutMs: spec.disruption.maxDrainTimeout ?? null,
          cancelHoldMs: spec.disruption.cancelHold,
          healthSettleMs: spec.disruption.healthSettle ?? brakeTimingDefaults(config.shard).healthSettleMs,
          unhealthyWindowMs: spec.disruption.unhealthyWindow ?? brakeTimingDefaults(config.shard).unhealthyWindowMs,
        }
      : NO_DISRUPTION_LIMITS,
    launchHook: spec.hooks?.launch ? { timeoutMs: spec.hooks.launch.timeout, onTimeout: spec.hooks.launch.onTimeout } : null,
  };
}

/** A scheduled size as the sizing logic uses it (`index`: its position in the config). */
export interface ScheduleSpec {
  index: number;
  name: string;
  cron: string;
  timezone: string;
  size: number;
}

/** Target tracking on a Prometheus query (durations in ms). */
export interface AutoscaleSpec {
  prometheus: string;
  query: string;
  targetPerInstance: number;
  intervalMs: number;
  queryTimeoutMs: number;
  scaleUpCooldownMs: number;
  scaleDownCooldownMs: number;
  maxStepDown: Quantity;
  bearerTokenFile: string | null;
}

/** What decides a group's size: its base size, bounds, schedules and autoscale. */
export interface GroupSizing {
  /** The configured `size`: the base size. */
  size: number;
  min: number;
  max: number;
  schedules: readonly ScheduleSpec[];
  autoscale: AutoscaleSpec | null;
}

/** The sizing settings of a configured group, or null when the config has no such group. */
export function groupSizing(config: DroverConfig, tenant: string, group: string): GroupSizing | null {
  const groups = Object.hasOwn(config.groups, tenant) ? config.groups[tenant] : undefined;
  const spec = groups && Object.hasOwn(groups, group) ? groups[group] : undefined;
  if (!spec) return null;
  const a = spec.autoscale;
  return {
    size: spec.size,
    min: spec.min,
    max: spec.max,
    schedules: spec.schedules.map((s, index) => ({ index, name: s.name ?? s.cron, cron: s.cron, timezone: s.timezone, size: s.size })),
    autoscale: a
      ? {
          prometheus: a.prometheus,
          query: a.query,
          targetPerInstance: a.targetPerInstance,
          intervalMs: a.interval,
          queryTimeoutMs: a.queryTimeout,
          scaleUpCooldownMs: a.scaleUpCooldown,
          scaleDownCooldownMs: a.scaleDownCooldown,
          maxStepDown: a.maxStepDown,
          bearerTokenFile: a.bearerTokenFile ?? null,
        }
      : null,
  };
}

/** Every configured (tenant, group) pair. */
export function configuredGroups(config: DroverConfig): Array<{ tenant: string; group: string }> {
  const out: Array<{ tenant: string; group: string }> = [];
  for (const [tenant, groups] of Object.entries(config.groups)) {
    for (const group of Object.keys(groups)) out.push({ tenant, group });
  }
  return out;
}
