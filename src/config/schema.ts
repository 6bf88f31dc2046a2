/**
 * The config file's schema (zod). Parsing reports every problem at once, each with its path
 * ("groups.default.web.size: must be >= 0"), and yields a normalised `DroverConfig` with
 * durations in milliseconds.
 */
import { z } from 'zod';
import { cronProblem } from './cron.js';
import { parseDuration } from './duration.js';

const NAME = /^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$/;
const NAME_RULE = 'must be 1-63 letters, digits, "_", "." or "-", starting with a letter or digit';

/** A duration string turned into milliseconds. */
const duration = z.union([z.string(), z.number()], { error: 'must be a duration such as "90s", "5m", "2h" or "21d"' }).transform((value, ctx) => {
  const ms = parseDuration(value);
  if (ms === null) {
    ctx.addIssue({ code: 'custom', message: `must be a duration such as "90s", "5m", "2h" or "21d" (got ${JSON.stringify(value)})` });
    return z.NEVER;
  }
  return ms;
});

const positiveDuration = duration.refine((ms) => ms > 0, { message: 'must be longer than 0s' });

const count = (min: number) =>
  z
    .number({ error: 'must be a whole number' })
    .int({ error: 'must be a whole number' })
    .min(min, { error: `must be >= ${min}` });

const expirySchema = z.strictObject({
  eligibleAge: duration.default(0),
  forcedAge: duration.default(0),
});

const shardSchema = z.strictObject({
  id: z.string().regex(NAME, { error: NAME_RULE }).default('local'),
  healthCheckInterval: positiveDuration.default(60_000),
  missedHealthThreshold: count(1).default(3),
  startupTimeout: positiveDuration.default(300_000),
  defaultDrainTimeout: duration.default(300_000),
  createRateLimit: duration.default(0),
  expiry: expirySchema.default(() => ({ eligibleAge: 0, forcedAge: 0 })),
  /** How long a termination notice gives when the notice itself names no time. */
  defaultNoticeWindow: positiveDuration.default(120_000),
  /** Groups reconciled at once. */
  workers: count(1).default(16),
  /** How often the whole provider is listed to find leaks and vanished instances. 0s = only at start. */
  resyncInterval: duration.default(600_000),
  /** Retries of a failed handler or provider call before giving up. */
  maxAttempts: count(1).default(8),
});

/** A count, or a percentage of the group's size ("20%", rounded up). */
const countOrPercent = z
  .union([z.number(), z.string()], { error: 'must be a whole number or a percentage such as "20%"' })
  .transform((value, ctx): Quantity => {
    if (typeof value === 'number') {
      if (Number.isInteger(value) && value >= 0) return { count: value };
    } else {
      const match = /^(\d+(?:\.\d+)?)%$/.exec(value.trim());
      if (match && Number(match[1]) <= 100) return { percent: Number(match[1]) };
      if (/^\d+$/.test(value.trim())) return { count: Number(value.trim()) };
    }
    ctx.addIssue({ code: 'custom', message: `must be a whole number >= 0 or a percentage from 0% to 100% (got ${JSON.stringify(value)})` });
    return z.NEVER;
  });

export type Quantity = { count: number } | { percent: number };

/** Voluntary disruption reasons a budget can cover. */
export const VOLUNTARY_REASONS = ['scaleDown', 'expiry', 'drift', 'operator'] as const;
export type VoluntaryReason = (typeof VOLUNTARY_REASONS)[number];

const cronField = z.string().superRefine((text, ctx) => {
  const problem = cronProblem(text);
  if (problem) ctx.addIssue({ code: 'custom', message: problem });
});

const timezone = z.string().superRefine((tz, ctx) => {
  try {
    new Intl.DateTimeFormat('en-US', { timeZone: tz });
  } catch {
    ctx.addIssue({ code: 'custom', message: `is not an IANA time zone such as "Europe/Berlin" (got ${JSON.stringify(tz)})` });
  }
});

const budgetSchema = z
  .strictObject({
    max: countOrPercent,
    reasons: z
      .array(z.enum(VOLUNTARY_REASONS, { error: `must be one of ${VOLUNTARY_REASONS.join(', ')}` }))
      .min(1, { error: 'must list at least one reason' })
      .default(() => [...VOLUNTARY_REASONS]),
    schedule: cronField.optional(),
    duration: positiveDuration.optional(),
    timezone: timezone.default('UTC'),
  })
  .superRefine((b, ctx) => {
    if ((b.schedule === undefined) !== (b.duration === undefined)) {
      ctx.addIssue({ code: 'custom', path: [b.schedule === undefined ? 'schedule' : 'duration'], message: 'schedule and duration go together: a budget with a window needs both' });
    }
  });

const disruptionSchema = z.strictObject({
  budgets: z.array(budgetSchema).default(() => []),
  /** Above this many unhealthy instances at once, automatic replacement for health reasons stops. */
  maxUnhealthy: countOrPercent.optional(),
  /** No extension pushes a drain past drainStartedAt + this. */
  maxDrainTimeout: positiveDuration.optional(),
  /** How long an instance whose rotation or operator drain was cancelled is left alone. */
  cancelHold: positiveDuration.default(3_600_000),
});

const groupSchema = z.strictObject({
  size: count(0),
  template: z.string({ error: 'must name a template' }).min(1, { error: 'must name a template' }),
  drainTimeout: duration.optional(),
  maxSurge: count(0).default(1),
  startupTimeout: positiveDuration.optional(),
  expiry: z
    .strictObject({
      eligibleAge: duration.optional(),
      forcedAge: duration.optional(),
    })
    .optional(),
  disruption: disruptionSchema.optional(),
});

const templateSchema = z.record(z.string(), z.unknown(), { error: 'must be a mapping of launch settings' });

const serverSchema = z.strictObject({
  listen: z
    .string()
    .regex(/^[^\s:]+:\d{1,5}$/, { error: 'must be host:port, such as "127.0.0.1:7400"' })
    .default('127.0.0.1:7400'),
  dataDir: z.string().min(1).default('./.drover'),
  token: z.string().min(1).optional(),
  advertise: z.url({ error: 'must be a URL such as "http://10.0.0.5:7400"' }).optional(),
  /**
   * HA: the advertised URLs of every replica of this shard (this one may be listed too). Agents
   * are given all of them and settle on the leader; followers redirect to the leader.
   */
  replicas: z.array(z.url({ error: 'must be a URL such as "http://10.0.0.5:7400"' })).default(() => []),
});

const providerSchema = z.strictObject({
  kind: z.enum(['local', 'sim'], { error: 'must be "local" or "sim"' }).default('local'),
  /** The provider API's rate limit; Drover spaces its calls to stay under it. 0 = none. */
  maxCallsPerSecond: z.number({ error: 'must be a number' }).min(0, { error: 'must be >= 0' }).default(0),
  maxConcurrentCalls: count(1).default(64),
  callTimeout: positiveDuration.default(60_000),
  stateDir: z.string().min(1).optional(),
  /** Local provider: how long a deleted instance gets between SIGTERM and SIGKILL. */
  killGracePeriod: duration.default(10_000),
  /** Sim provider: latencies (tests and demos). */
  createLatency: duration.default(0),
  deleteLatency: duration.default(0),
});

const leaderSchema = z.strictObject({
  kind: z.enum(['single', 'etcd'], { error: 'must be "single" or "etcd"' }).default('single'),
  endpoints: z.array(z.string().min(1)).default(() => []),
  ttl: positiveDuration.default(5_000),
});

const groupsSchema = z.record(
  z.string().regex(NAME, { error: `tenant ${NAME_RULE}` }),
  z.record(z.string().regex(NAME, { error: `group ${NAME_RULE}` }), groupSchema, { error: 'must map group names to groups' }),
  { error: 'must map tenant names to their groups' },
);

export const configSchema = z
  .strictObject({
    shard: shardSchema.default(() => shardSchema.parse({})),
    groups: groupsSchema.default(() => ({})),
    templates: z.record(z.string().regex(NAME, { error: `template ${NAME_RULE}` }), templateSchema).default(() => ({})),
    server: serverSchema.optional(),
    provider: providerSchema.optional(),
    leader: leaderSchema.optional(),
  })
  .superRefine((cfg, ctx) => {
    const { eligibleAge, forcedAge } = cfg.shard.expiry;
    if (eligibleAge > 0 && forcedAge > 0 && eligibleAge >= forcedAge) {
      ctx.addIssue({ code: 'custom', path: ['shard', 'expiry', 'forcedAge'], message: 'must be longer than eligibleAge' });
    }
    if (cfg.leader?.kind === 'etcd' && cfg.leader.endpoints.length === 0) {
      ctx.addIssue({ code: 'custom', path: ['leader', 'endpoints'], message: 'must list at least one etcd endpoint when kind is "etcd"' });
    }
    for (const [tenant, groups] of Object.entries(cfg.groups)) {
      for (const [name, group] of Object.entries(groups)) {
        if (!Object.hasOwn(cfg.templates, group.template)) {
          ctx.addIssue({
            code: 'custom',
            path: ['groups', tenant, name, 'template'],
            message: `names template "${group.template}", which is not defined under templates`,
          });
        }
        const eligible = group.expiry?.eligibleAge ?? eligibleAge;
        const forced = group.expiry?.forcedAge ?? forcedAge;
        if (group.expiry && eligible > 0 && forced > 0 && eligible >= forced) {
          ctx.addIssue({ code: 'custom', path: ['groups', tenant, name, 'expiry', 'forcedAge'], message: 'must be longer than eligibleAge' });
        }
      }
    }
  });

export type ParsedConfig = z.output<typeof configSchema>;
export type ConfigInput = z.input<typeof configSchema>;
