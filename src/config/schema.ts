/**
 * The config file's schema (zod). Parsing reports every problem at once, each with its path
 * ("groups.default.web.size: must be >= 0"), and yields a normalised `DroverConfig` with
 * durations in milliseconds.
 */
import { z } from 'zod';
import { cronProblem } from './cron.js';
import { parseDuration } from './duration.js';
import { awsTemplateSchema } from './aws-template.js';
import { hetznerTemplateSchema } from './hetzner-template.js';
import { NOTIFICATION_EVENT_TYPES } from './notification-events.js';

/** How a launch hook is completed (by an operator, the instance, or its timeout's `onTimeout`). */
export const LAUNCH_HOOK_RESULTS = ['continue', 'abandon'] as const;

const NAME = /^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$/;
const NAME_RULE = 'must be 1-63 letters, digits, "_", "." or "-", starting with a letter or digit';

/** The longest duration a config may give: a year (longer ones are typos, and dates must stay representable). */
export const MAX_CONFIG_DURATION_MS = 366 * 86_400_000;

/** A duration string turned into milliseconds (at most a year). */
const duration = z.union([z.string(), z.number()], { error: 'must be a duration such as "90s", "5m", "2h" or "21d"' }).transform((value, ctx) => {
  const ms = parseDuration(value);
  if (ms === null) {
    ctx.addIssue({ code: 'custom', message: `must be a duration such as "90s", "5m", "2h" or "21d" (got ${JSON.stringify(value)})` });
    return z.NEVER;
  }
  if (ms > MAX_CONFIG_DURATION_MS) {
    ctx.addIssue({ code: 'custom', message: `must be at most a year (366d) (got ${JSON.stringify(value)})` });
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
  /**
   * A group that disappears from the config is drained only after this long: a config that brings
   * it back meanwhile (a file saved in two steps, or cut short) cancels its removal. 0s = at once.
   */
  groupRemovalGrace: duration.default(120_000),
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

/**
 * Unanswered pings (one per health interval) after which the agent endpoint drops a connection:
 * a stopped process is noticed within (AGENT_PING_MISSES + 1) intervals.
 */
export const AGENT_PING_MISSES = 2;

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
  /**
   * With maxUnhealthy: an instance judged unhealthy is acted on only this long after, so that
   * failures that happen together are counted together. Default: one health interval plus the
   * agent endpoint's ping timeout.
   */
  healthSettle: duration.optional(),
  /**
   * With maxUnhealthy: an instance replaced for its health still counts toward the brake until
   * this long after it left and until its replacement has reported healthy this long.
   * Default: 3 × (healthCheckInterval × missedHealthThreshold).
   */
  unhealthyWindow: duration.optional(),
});

/** The largest size a group may have (and the API's bound on a size). */
export const MAX_GROUP_SIZE = 100_000;

const groupSize = count(0).max(MAX_GROUP_SIZE, { error: `must be <= ${MAX_GROUP_SIZE}` });

/** A scheduled size: at each fire time of `cron` (in `timezone`) the group's size becomes `size`. */
const scheduleSchema = z.strictObject({
  cron: cronField,
  timezone: timezone.default('UTC'),
  size: groupSize,
  /** Shown in status and audit ("weekday mornings"); default: the cron expression. */
  name: z.string().min(1).max(63).optional(),
});

/** Target tracking on a Prometheus query: size = ceil(value / targetPerInstance), within min..max. */
const autoscaleSchema = z.strictObject({
  prometheus: z.url({ protocol: /^https?$/, error: 'must be an http(s) URL such as "http://127.0.0.1:9090"' }).max(2_048),
  query: z.string({ error: 'must be a PromQL expression' }).min(1, { error: 'must be a PromQL expression' }).max(8_192),
  targetPerInstance: z.number({ error: 'must be a number' }).positive({ error: 'must be > 0' }).max(1e15, { error: 'must be <= 1e15' }),
  /** How often the query is evaluated. */
  interval: positiveDuration.default(30_000),
  /** How long one query may take before it counts as failed. */
  queryTimeout: positiveDuration.default(10_000),
  /** After a scale-up (by anyone), no other scale-up for this long. */
  scaleUpCooldown: duration.default(60_000),
  /** After any change of size, no scale-down for this long; also the stabilisation window. */
  scaleDownCooldown: duration.default(600_000),
  /** A scale-down removes at most this many (or this share of the size) at once. */
  maxStepDown: countOrPercent.default(() => ({ percent: 25 })),
  /** A bearer token for Prometheus, read from this file at each query (rotations apply at once). */
  bearerTokenFile: z.string().min(1).optional(),
});

/** Bounds of a launch hook's timeout: long enough for a boot script, short enough that a lost instance is noticed. */
export const LAUNCH_HOOK_MIN_TIMEOUT_MS = 10_000;
export const LAUNCH_HOOK_MAX_TIMEOUT_MS = 24 * 3_600_000;

/**
 * A blocking launch hook: a new instance is not in service until someone (an operator, the
 * instance itself with `drover self ready`, or the timeout) completes it with continue or abandon.
 * `onTimeout` defaults to `abandon`, as a cloud's lifecycle hooks do: an instance that never says
 * it is ready is replaced, as one that never reports health is.
 */
const launchHookSchema = z.strictObject({
  timeout: duration
    .refine((ms) => ms >= LAUNCH_HOOK_MIN_TIMEOUT_MS && ms <= LAUNCH_HOOK_MAX_TIMEOUT_MS, { message: 'must be from 10s to 24h' })
    .default(600_000),
  onTimeout: z.enum(LAUNCH_HOOK_RESULTS, { error: 'must be "continue" or "abandon"' }).default('abandon'),
});

const groupSchema = z.strictObject({
  size: groupSize,
  /** The group's size never goes below this (schedules, the API, autoscale), except asleep. */
  min: groupSize.default(0),
  /** The group's size never goes above this. */
  max: groupSize.default(MAX_GROUP_SIZE),
  schedules: z.array(scheduleSchema).max(50, { error: 'must list at most 50 schedules' }).default(() => []),
  autoscale: autoscaleSchema.optional(),
  template: z.string({ error: 'must name a template' }).min(1, { error: 'must name a template' }),
  drainTimeout: duration.optional(),
  maxSurge: count(0).default(1),
  /**
   * What a cloud's rebalance recommendation does (EC2: the instance is at elevated risk of a spot
   * interruption): `ignore` (default), or `replace`: a replacement-first rotation under the
   * group's budgets, as an operator drain.
   */
  onRebalance: z.enum(['ignore', 'replace'], { error: 'must be "ignore" or "replace"' }).optional(),
  startupTimeout: positiveDuration.optional(),
  expiry: z
    .strictObject({
      eligibleAge: duration.optional(),
      forcedAge: duration.optional(),
    })
    .optional(),
  disruption: disruptionSchema.optional(),
  /** Blocking lifecycle hooks (the terminate hook is the drain). */
  hooks: z.strictObject({ launch: launchHookSchema.optional() }).optional(),
}).superRefine((g, ctx) => {
  // zod runs this even when a field failed: a size that is not a valid size has its own issue.
  const valid = (n: unknown): n is number => typeof n === 'number' && Number.isInteger(n) && n >= 0 && n <= MAX_GROUP_SIZE;
  if (!valid(g.min) || !valid(g.max)) return;
  if (g.min > g.max) {
    ctx.addIssue({ code: 'custom', path: ['min'], message: `must be <= max (${g.max})` });
    return;
  }
  const range = `must be between min (${g.min}) and max (${g.max})`;
  if (valid(g.size) && (g.size < g.min || g.size > g.max)) ctx.addIssue({ code: 'custom', path: ['size'], message: range });
  (Array.isArray(g.schedules) ? g.schedules : []).forEach((schedule, i) => {
    if (valid(schedule?.size) && (schedule.size < g.min || schedule.size > g.max)) ctx.addIssue({ code: 'custom', path: ['schedules', i, 'size'], message: range });
  });
});

const templateSchema = z.record(z.string(), z.unknown(), { error: 'must be a mapping of launch settings' });

/** Roles of API tokens: viewer reads, operator also acts (in its tenants), admin does everything. */
export const TOKEN_ROLES = ['viewer', 'operator', 'admin'] as const;
export type TokenRole = (typeof TOKEN_ROLES)[number];

/** The shortest token Drover accepts (a shorter one can be guessed). */
export const MIN_TOKEN_LENGTH = 16;

const tokenText = z.string().min(MIN_TOKEN_LENGTH, { error: `must be at least ${MIN_TOKEN_LENGTH} characters (a shorter token can be guessed)` }).max(4096);

/**
 * A named API token, given as its SHA-256, a file holding it, or an environment variable holding
 * it (never required in clear in the config).
 */
const apiTokenSchema = z
  .strictObject({
    name: z.string().regex(NAME, { error: NAME_RULE }),
    role: z.enum(TOKEN_ROLES, { error: `must be one of ${TOKEN_ROLES.join(', ')}` }),
    sha256: z
      .string()
      .regex(/^[0-9a-fA-F]{64}$/, { error: 'must be the 64 hex digits of the token\'s SHA-256' })
      .transform((hex) => hex.toLowerCase())
      .optional(),
    file: z.string().min(1).optional(),
    env: z.string().regex(/^[A-Za-z_][A-Za-z0-9_]*$/, { error: 'must be an environment variable name' }).optional(),
    /** Only these tenants (default: every tenant). */
    tenants: z.array(z.string().regex(NAME, { error: `tenant ${NAME_RULE}` })).min(1, { error: 'must list at least one tenant (leave it out for every tenant)' }).optional(),
  })
  .superRefine((t, ctx) => {
    const given = [t.sha256, t.file, t.env].filter((v) => v !== undefined).length;
    if (given !== 1) ctx.addIssue({ code: 'custom', message: 'give exactly one of sha256, file and env' });
  });

const tlsServerSchema = z.strictObject({
  /** PEM certificate chain and key files; re-read when they change (certificates rotate). */
  cert: z.string().min(1),
  key: z.string().min(1),
  /** When set, clients must present a certificate signed by this CA (mutual TLS). */
  clientCa: z.string().min(1).optional(),
  /** The CA that agents and the CLI verify this server against (default: the system's CAs). */
  ca: z.string().min(1).optional(),
  // h-tls: the client certificate and key files agents present when clientCa is set (the
  // local provider hands their paths to its agents; src/server/tls.ts).
  agentCert: z.string().min(1).optional(),
  agentKey: z.string().min(1).optional(),
})
  // h-tls
  .superRefine((t, ctx) => {
    if ((t.agentCert === undefined) !== (t.agentKey === undefined)) ctx.addIssue({ code: 'custom', path: [t.agentCert === undefined ? 'agentCert' : 'agentKey'], message: 'agentCert and agentKey go together' });
  });

const serverSchema = z.strictObject({
  listen: z
    .string()
    .regex(/^(?:[^\s:[\]]+|\[[0-9A-Fa-f:.]+\]):\d{1,5}$/, { error: 'must be host:port, such as "127.0.0.1:7400"' })
    .default('127.0.0.1:7400'),
  dataDir: z.string().min(1).default('./.drover'),
  /** One admin token (or env DROVER_TOKEN). */
  token: tokenText.optional(),
  /** Named tokens with roles and tenants. */
  tokens: z.array(apiTokenSchema).max(1000).default(() => []),
  /** /metrics needs a token (any role) when true; by default it is public. */
  metricsToken: z.boolean().default(false),
  /** Listening on a non-loopback address with no token is refused unless this says so. */
  insecureNoAuth: z.boolean().default(false),
  /** More names this server may be reached by (the Host header), beside its listen and advertised addresses. */
  allowedHosts: z.array(z.string().min(1).max(255)).max(100).default(() => []),
  advertise: z.url({ error: 'must be a URL such as "http://10.0.0.5:7400"' }).optional(),
  /**
   * HA: the advertised URLs of every replica of this shard (this one may be listed too). Agents
   * are given all of them and settle on the leader; followers redirect to the leader.
   */
  replicas: z.array(z.url({ error: 'must be a URL such as "http://10.0.0.5:7400"' })).max(50).default(() => []),
  /** Serve HTTPS and WSS. */
  tls: tlsServerSchema.optional(),
  /** The longest a client may take to send a request (headers and body). */
  requestTimeout: positiveDuration.default(30_000),
  /** Event-stream clients at once; more are refused with 503. */
  maxEventSubscribers: count(1).max(100_000).default(256),
  /**
   * How long a one-time agent bootstrap token stays good (a provider with `agentBootstrap:
   * 'token'`): long enough for a machine to boot and install the agent, short enough that a token
   * read from user data later is worthless.
   */
  agentBootstrapTokenTtl: duration
    .refine((ms) => ms >= 60_000 && ms <= 86_400_000, { message: 'must be from 1m to 24h' })
    .default(30 * 60_000),
});

const providerSchema = z.strictObject({
  kind: z.enum(['local', 'sim', 'aws', 'hetzner'], { error: 'must be "local", "sim", "aws" or "hetzner"' }).default('local'),
  /** The provider API's rate limit; Drover spaces its calls to stay under it. 0 = none. */
  maxCallsPerSecond: z.number({ error: 'must be a number' }).min(0, { error: 'must be >= 0' }).default(0),
  maxConcurrentCalls: count(1).default(64),
  /** Creates in flight at once: beyond the provider's launch burst, each one in flight comes back throttled. */
  maxConcurrentCreates: count(1).default(16),
  callTimeout: positiveDuration.default(60_000),
  stateDir: z.string().min(1).optional(),
  /** Local provider: how long a deleted instance gets between SIGTERM and SIGKILL. */
  killGracePeriod: duration.default(10_000),
  /** Sim provider: latencies (tests and demos). */
  createLatency: duration.default(0),
  deleteLatency: duration.default(0),
  /**
   * Throttled calls (the provider said "too fast") slow the provider's call rate, which then
   * creeps back up while calls succeed (additive increase, multiplicative decrease), beyond
   * maxCallsPerSecond. false = only pause for a second after a throttle.
   */
  adaptiveRate: z.boolean().default(true),
  /** AWS: the region (else AWS_REGION / AWS_DEFAULT_REGION / the shared config file). */
  region: z
    .string()
    .regex(/^[a-z]{2}(-[a-z]+)+-\d{1,2}$/, { error: 'must be an AWS region such as "eu-central-1"' })
    .optional(),
  /**
   * The cloud API's endpoint. AWS: else AWS_ENDPOINT_URL_EC2 / AWS_ENDPOINT_URL, else the
   * region's. Hetzner: else HCLOUD_ENDPOINT, else https://api.hetzner.cloud/v1.
   */
  endpoint: z.url({ error: 'must be a URL such as "https://ec2.eu-central-1.amazonaws.com"' }).optional(),
  /** Hetzner: a file holding the API token (else HCLOUD_TOKEN). Never the token itself in the config. */
  tokenFile: z.string().min(1).optional(),
  /**
   * AWS: how long after a launch EC2 may still say the instance does not exist (its API is
   * eventually consistent); until then a "not found" is retried, never taken as "vanished".
   */
  notFoundGrace: positiveDuration.default(120_000),
  /** AWS: attempts the SDK makes for a call that failed in transit or with a 5xx (throttles go to the call gate instead). */
  sdkMaxAttempts: count(1).max(10).default(3),
});

const leaderSchema = z.strictObject({
  kind: z.enum(['single', 'etcd'], { error: 'must be "single" or "etcd"' }).default('single'),
  endpoints: z.array(z.string().min(1)).max(50).default(() => []),
  ttl: positiveDuration.default(5_000),
  /** TLS to etcd: the CA that signed etcd's certificates, and this client's certificate (mutual TLS). */
  tls: z
    .strictObject({
      ca: z.string().min(1),
      cert: z.string().min(1).optional(),
      key: z.string().min(1).optional(),
    })
    .superRefine((t, ctx) => {
      if ((t.cert === undefined) !== (t.key === undefined)) ctx.addIssue({ code: 'custom', path: [t.cert === undefined ? 'cert' : 'key'], message: 'cert and key go together' });
    })
    .optional(),
  /** etcd's own authentication (a user with a password read from a file). */
  auth: z.strictObject({ username: z.string().min(1), passwordFile: z.string().min(1) }).optional(),
});

/** What cloud instances are told about the agent (the local provider runs this build's agent). */
const agentSchema = z.strictObject({
  /**
   * The shell command line the bootstrap runs to install `drover` on a cloud instance (default:
   * `npm install -g --allow-scripts=better-sqlite3 drover@<this server's version>`), e.g. a
   * mirror or a package from your own registry.
   */
  install: z.string().min(1).max(4096).optional(),
});

const storeSchema = z.strictObject({
  /** Audit entries and deleted instances older than this are removed. */
  retention: duration.refine((ms) => ms >= 86_400_000, { message: 'must be at least 1d' }).default(30 * 86_400_000),
});

/** The most webhook endpoints a config may list. */
export const MAX_NOTIFICATION_ENDPOINTS = 32;
export const NOTIFICATION_FORMATS = ['json', 'slack'] as const;

/** Whether a URL's host is this machine (plain http is allowed there only, unless insecureHttp). */
function isLoopbackUrl(url: URL): boolean {
  const host = url.hostname.replace(/^\[(.*)\]$/, '$1');
  return host === 'localhost' || host === '::1' || /^127\.\d+\.\d+\.\d+$/.test(host);
}

/** A webhook endpoint: which events go to it, signed with its secret(s). */
const notificationSchema = z
  .strictObject({
    name: z.string().regex(NAME, { error: NAME_RULE }),
    url: z.url({ protocol: /^https?$/, error: 'must be an http(s) URL such as "https://hooks.example.com/drover"' }).max(2_048),
    /** The events it receives (default: every event). */
    events: z
      .array(z.enum(NOTIFICATION_EVENT_TYPES.filter((t) => t !== 'test') as [string, ...string[]], { error: `must be one of ${NOTIFICATION_EVENT_TYPES.filter((t) => t !== 'test').join(', ')}` }))
      .min(1, { error: 'must list at least one event (leave it out for every event)' })
      .optional(),
    /** Only events of these tenants (default: every tenant). */
    tenants: z.array(z.string().regex(NAME, { error: `tenant ${NAME_RULE}` })).min(1, { error: 'must list at least one tenant (leave it out for every tenant)' }).optional(),
    /** A file (mode 0600) holding the signing secret; a second line holds the previous one while receivers move over. */
    secretFile: z.string().min(1, { error: 'must name the file that holds the signing secret' }),
    format: z.enum(NOTIFICATION_FORMATS, { error: `must be one of ${NOTIFICATION_FORMATS.join(', ')}` }).default('json'),
    /** How long one delivery may take before it counts as failed. */
    timeout: duration.refine((ms) => ms >= 1_000 && ms <= 60_000, { message: 'must be from 1s to 60s' }).default(10_000),
    /** How long a failing event is retried before it is kept as a dead letter. */
    retryFor: duration.refine((ms) => ms >= 60_000 && ms <= 7 * 86_400_000, { message: 'must be from 1m to 7d' }).default(86_400_000),
    /** Deliveries in flight to this endpoint at most. */
    maxConcurrency: count(1).max(32, { error: 'must be <= 32' }).default(4),
    /** Allow plain http to a host other than this machine (the body and signature travel in clear). */
    insecureHttp: z.boolean().default(false),
  })
  .superRefine((n, ctx) => {
    const url = new URL(n.url);
    if (url.protocol === 'http:' && !isLoopbackUrl(url) && !n.insecureHttp) {
      ctx.addIssue({ code: 'custom', path: ['url'], message: 'must be https unless it is this machine (say insecureHttp: true to send events in clear on purpose)' });
    }
    if (url.username || url.password) ctx.addIssue({ code: 'custom', path: ['url'], message: 'must not carry credentials: the signature authenticates Drover to the receiver' });
  });

const notificationsSchema = z
  .array(notificationSchema)
  .max(MAX_NOTIFICATION_ENDPOINTS, { error: `must list at most ${MAX_NOTIFICATION_ENDPOINTS} endpoints` })
  .superRefine((list, ctx) => {
    const seen = new Set<string>();
    list.forEach((n, i) => {
      if (seen.has(n.name)) ctx.addIssue({ code: 'custom', path: [i, 'name'], message: `names "${n.name}" a second time: endpoint names must be unique` });
      seen.add(n.name);
    });
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
    server: serverSchema.default(() => serverSchema.parse({})),
    provider: providerSchema.default(() => providerSchema.parse({})),
    leader: leaderSchema.default(() => leaderSchema.parse({})),
    store: storeSchema.default(() => storeSchema.parse({})),
    agent: agentSchema.default(() => agentSchema.parse({})),
    /** Webhooks: events delivered at least once, signed, in order per instance (src/notifications/). */
    notifications: notificationsSchema.default(() => []),
    /** A config with no groups at all is refused (a truncated file must not delete the fleet) unless this says so. */
    allowEmpty: z.boolean().default(false),
  })
  .superRefine((cfg, ctx) => {
    const { eligibleAge, forcedAge } = cfg.shard.expiry;
    if (eligibleAge > 0 && forcedAge > 0 && eligibleAge >= forcedAge) {
      ctx.addIssue({ code: 'custom', path: ['shard', 'expiry', 'forcedAge'], message: 'must be longer than eligibleAge' });
    }
    if (!cfg.allowEmpty && Object.values(cfg.groups).every((groups) => Object.keys(groups).length === 0)) {
      ctx.addIssue({ code: 'custom', path: ['groups'], message: 'lists no group: a config without groups would drain every instance (say allowEmpty: true if that is meant)' });
    }
    if (cfg.leader.kind === 'etcd' && cfg.leader.endpoints.length === 0) {
      ctx.addIssue({ code: 'custom', path: ['leader', 'endpoints'], message: 'must list at least one etcd endpoint when kind is "etcd"' });
    }
    if (cfg.provider.kind === 'aws' || cfg.provider.kind === 'hetzner') {
      // Templates are free-form until the provider is known: a cloud's template is checked here,
      // so a bad field is refused at load with its path, not at the first launch.
      const schema = cfg.provider.kind === 'aws' ? awsTemplateSchema : hetznerTemplateSchema;
      for (const [name, template] of Object.entries(cfg.templates)) {
        const parsed = schema.safeParse(template);
        if (parsed.success) continue;
        for (const issue of parsed.error.issues) {
          const path = ['templates', name, ...issue.path.map((p) => (typeof p === 'symbol' ? String(p) : p))];
          if (issue.code === 'unrecognized_keys') {
            for (const key of issue.keys) ctx.addIssue({ code: 'custom', path: [...path, key], message: 'is not a known field' });
          } else {
            ctx.addIssue({ code: 'custom', path, message: issue.message });
          }
        }
      }
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
