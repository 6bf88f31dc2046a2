/**
 * The operator's view of the config during a run: group sizes, templates, removed groups. Steps
 * change it; `render()` gives the object handed to `ConfigLoader.update()`.
 */
import { formatDuration } from '../src/config/index.js';
import { ALL_REASONS, type BudgetDraw, type FleetSpec, type GroupSpec, type InvalidFlavor, type QuantityDraw, type ShardSpec, type VoluntaryReasonDraw } from './scenario.js';
import type { WindowSpec } from './windows.js';
import { sizeInForce, type AutoscaledSize, type SleepModel } from './sizing.js';
import { LOAD_PER_INSTANCE, type AutoscaleDraw } from './scenario.js';

/**
 * How the config is rendered. The world's own config uses none of these; the planted-bug
 * self-test hands the reconciler a config with a control taken away (`surgeBonus`: every
 * maxSurge that much higher; `withoutBudgets`; `withoutBrake`; `withoutSchedules`; `withoutCooldowns`).
 */
export interface RenderOptions {
  surgeBonus?: number;
  withoutBudgets?: boolean;
  withoutBrake?: boolean;
  withoutSchedules?: boolean;
  /** Autoscale without cooldowns, and any step down at once. */
  withoutCooldowns?: boolean;
}

/** The query an autoscaled group's config names: the world answers it with the group's load. */
export function loadQuery(tenant: string, group: string): string {
  return `sum(sim_load{tenant="${tenant}",group="${group}"})`;
}

function quantity(q: QuantityDraw): number | string {
  return 'count' in q ? q.count : `${q.percent}%`;
}

function renderBudget(b: BudgetDraw): ConfigObject {
  return {
    max: quantity(b.max),
    ...(b.reasons === null ? {} : { reasons: [...b.reasons] }),
    ...(b.window === null ? {} : { schedule: b.window.schedule, duration: formatDuration(b.window.durationMs), timezone: b.window.timezone }),
  };
}

interface GroupState {
  spec: GroupSpec;
  size: number;
  template: string;
  removed: boolean;
  /** Removed at least once: its instances may have drained under the shard's default timeout. */
  everRemoved: boolean;
}

type ConfigObject = Record<string, unknown>;

/** A budget of the config in force, as the checker knows it (`index`: its place in the rendered list). */
export interface ModelBudget {
  index: number;
  max: QuantityDraw;
  reasons: readonly VoluntaryReasonDraw[];
  window: WindowSpec | null;
}

/**
 * A configured group's settings as the checker knows them: what the model rendered, with the
 * shard's defaults where the group leaves a field out (README.md). Not what the reconciler's
 * config code resolves: the checker judges that code.
 */
export interface ModelGroup {
  tenant: string;
  group: string;
  /**
   * The size in force at the moment it is read (the world's clock): the config's size, or the
   * schedule's that fired last, within min..max; 0 while the tenant sleeps (sim/sizing.ts).
   */
  readonly size: number;
  /** Since when `size` has been in force (a schedule's fire, a sleep, a wake; else the config's). */
  readonly sizeSince: number;
  /** The configured `size` (the base size). */
  configSize: number;
  /** `min` and `max` (0 and the largest size when the group sets none). */
  min: number;
  max: number;
  /** Its autoscale, while the config has it. */
  autoscale: AutoscaleDraw | null;
  maxSurge: number;
  /** The template's name, and the image it stands for now (`name:version`). */
  template: string;
  image: string;
  drainTimeoutMs: number;
  startupTimeoutMs: number;
  eligibleAgeMs: number;
  forcedAgeMs: number;
  budgets: readonly ModelBudget[];
  maxUnhealthy: QuantityDraw | null;
  maxDrainTimeoutMs: number | null;
  cancelHoldMs: number;
  /**
   * The brake's timing (README.md, "The health brake"; the model renders neither, so both are
   * the defaults): a failure is acted on only `healthSettle` after it was judged (3 × the health
   * interval: one interval plus the agent endpoint's ping timeout), and an instance replaced for
   * health counts at least `unhealthyWindow` after it left (3 × interval × threshold).
   */
  healthSettleMs: number;
  unhealthyWindowMs: number;
}

/** The config in force, as the checker knows it: the shard, and every configured group. */
export interface ModelConfig {
  shard: ShardSpec;
  groups: readonly ModelGroup[];
  /** A configured group's settings, or null when the config has no such group (removed, or never). */
  group(tenant: string, group: string): ModelGroup | null;
}

/** A ModelConfig over `groups` (tests build them by hand). */
export function modelConfig(shard: ShardSpec, groups: readonly ModelGroup[]): ModelConfig {
  const byKey = new Map(groups.map((g) => [`${g.tenant}/${g.group}`, g]));
  return { shard, groups, group: (tenant, group) => byKey.get(`${tenant}/${group}`) ?? null };
}

export class ConfigModel {
  readonly groups: GroupState[];
  private readonly versions = new Map<string, number>();
  /**
   * The operator lifted every health brake (maxUnhealthy left out): done once the faults stop,
   * when instances that will never recover (stopped at the provider) hold a brake for good.
   */
  brakeLifted = false;
  /**
   * Budgets the operator removed once the faults stop: zero budgets whose windows together never
   * open for some reason (each alone is shorter than its period, but two may tile the clock), so
   * that what they cover would be held for good.
   */
  readonly liftedBudgets = new Set<BudgetDraw>();
  /** The operator removed every schedule and autoscale: done once the faults stop, so that sizes hold still. */
  schedulesLifted = false;
  /** An autoscaled group's size as its audited decisions set it (kept by the checker). */
  autoscaledSize: (tenant: string, group: string) => AutoscaledSize = () => ({ size: null, at: null });
  /** Tenants put to sleep by the operator (woken: removed), and when each was last woken by the operator. */
  readonly sleeps = new Map<string, SleepModel>();
  readonly wokenAt = new Map<string, number>();

  /**
   * @param now the world's clock, at which a group's size in force is read
   * @param configSince when the configured sizes were set (the run's start: the simulated operator
   *   never changes the size of a group with schedules)
   */
  constructor(
    private readonly fleet: FleetSpec,
    private readonly now: () => number = () => fleet.startMs,
    private readonly configSince: number = fleet.startMs,
  ) {
    this.groups = fleet.groups.map((spec) => ({ spec, size: spec.size, template: spec.template, removed: false, everRemoved: false }));
    for (const t of fleet.templates) this.versions.set(t, 1);
  }

  group(index: number): GroupState | undefined {
    return this.groups[index];
  }

  findGroup(tenant: string, group: string): GroupState | undefined {
    return this.groups.find((g) => g.spec.tenant === tenant && g.spec.group === group);
  }

  bumpTemplate(name: string): number {
    const next = (this.versions.get(name) ?? 1) + 1;
    this.versions.set(name, next);
    return next;
  }

  /** The image a template stands for now. */
  image(template: string): string {
    return `${template}:${this.versions.get(template) ?? 1}`;
  }

  /**
   * The config the model renders, in the checker's terms (taken when a config is applied, so
   * that it is the one in force). Sizes, templates and the disruption controls come from the
   * model; a field the group leaves out takes the shard's value, as README.md says.
   */
  inForce(): ModelConfig {
    const { shard } = this.fleet;
    const groups: ModelGroup[] = [];
    for (const g of this.groups) {
      if (g.removed) continue;
      const { spec } = g;
      const sizing = spec.sizing ?? null;
      const configSize = g.size;
      const schedulesOn = !this.schedulesLifted;
      const { sleeps, wokenAt, now, configSince } = this;
      const autoscale = !this.schedulesLifted ? (sizing?.autoscale ?? null) : null;
      const autoscaled = (): AutoscaledSize | null => (autoscale ? this.autoscaledSize(spec.tenant, spec.group) : null);
      // Read often, by many checks in one instant: kept for the instant (and the sleep) it was worked out for.
      let memo: { at: number; sleep: SleepModel | undefined; woken: number | undefined; scaled: string; size: number; since: number } | null = null;
      const inForce = (): { size: number; since: number } => {
        const at = now();
        const sleep = sleeps.get(spec.tenant);
        const woken = wokenAt.get(spec.tenant);
        const scaledNow = autoscaled();
        const scaled = JSON.stringify(scaledNow);
        if (memo?.at !== at || memo.sleep !== sleep || memo.woken !== woken || memo.scaled !== scaled) {
          memo = { at, sleep, woken, scaled, ...sizeInForce(configSize, sizing, schedulesOn, configSince, sleep, woken, at, scaledNow) };
        }
        return memo;
      };
      groups.push({
        tenant: spec.tenant,
        group: spec.group,
        get size(): number {
          return inForce().size;
        },
        get sizeSince(): number {
          return inForce().since;
        },
        configSize,
        min: sizing?.min ?? 0,
        max: sizing?.max ?? 100_000,
        autoscale,
        maxSurge: spec.maxSurge,
        template: g.template,
        image: this.image(g.template),
        drainTimeoutMs: spec.drainTimeoutMs ?? shard.defaultDrainTimeoutMs,
        startupTimeoutMs: spec.startupTimeoutMs ?? shard.startupTimeoutMs,
        // The model renders no shard-wide expiry: a group without its own has none.
        eligibleAgeMs: spec.eligibleAgeMs,
        forcedAgeMs: spec.forcedAgeMs,
        budgets: this.budgetsOf(g).map((b, index) => ({ index, max: b.max, reasons: b.reasons ?? ALL_REASONS, window: b.window })),
        maxUnhealthy: this.brakeLifted ? null : spec.maxUnhealthy,
        maxDrainTimeoutMs: spec.maxDrainTimeoutMs,
        cancelHoldMs: spec.cancelHoldMs,
        healthSettleMs: 3 * shard.healthCheckIntervalMs,
        unhealthyWindowMs: 3 * shard.healthCheckIntervalMs * shard.missedHealthThreshold,
      });
    }
    return modelConfig(shard, groups);
  }

  /** The group's budgets in the config (those the operator lifted left out). */
  private budgetsOf(g: GroupState): BudgetDraw[] {
    return g.spec.budgets.filter((b) => !this.liftedBudgets.has(b));
  }

  render(options: RenderOptions = {}): ConfigObject {
    const { shard, provider } = this.fleet;
    const groups: Record<string, Record<string, ConfigObject>> = {};
    for (const g of this.groups) {
      if (g.removed) continue;
      (groups[g.spec.tenant] ??= {})[g.spec.group] = this.renderGroup(g, options);
    }
    const templates: Record<string, ConfigObject> = {};
    for (const [name, version] of this.versions) templates[name] = { image: `${name}:${version}` };
    return {
      shard: {
        id: 'sim',
        healthCheckInterval: formatDuration(shard.healthCheckIntervalMs),
        missedHealthThreshold: shard.missedHealthThreshold,
        startupTimeout: formatDuration(shard.startupTimeoutMs),
        defaultDrainTimeout: formatDuration(shard.defaultDrainTimeoutMs),
        createRateLimit: formatDuration(shard.createRateLimitMs),
        defaultNoticeWindow: formatDuration(shard.defaultNoticeWindowMs),
        workers: shard.workers,
        resyncInterval: formatDuration(shard.resyncIntervalMs),
        maxAttempts: shard.maxAttempts,
      },
      provider: {
        kind: 'sim',
        maxCallsPerSecond: provider.maxCallsPerSecond,
        callTimeout: formatDuration(provider.callTimeoutMs),
        // The checker's timing slack counts slots of the configured rate; an adaptive rate halves
        // it after a throttle burst and is not modelled (sim/README.md, "Noted, not changed").
        adaptiveRate: false,
        // Creates were limited by maxConcurrentCalls alone when the checker's slack was written.
        maxConcurrentCreates: 64,
      },
      templates,
      groups,
      // The simulated operator may remove every group on purpose.
      allowEmpty: true,
    };
  }

  /** A config that must be rejected, built by breaking the current one in one way. */
  renderInvalid(flavor: InvalidFlavor, index: number, options: RenderOptions = {}): unknown {
    const config = this.render(options);
    const g = this.groups[index] ?? this.groups[0];
    if (!g) return 'not a config';
    const groups = config.groups as Record<string, Record<string, ConfigObject>>;
    const tenant = (groups[g.spec.tenant] ??= {});
    const entry: ConfigObject = { ...this.renderGroup(g, options) };
    switch (flavor) {
      case 'negativeSize':
        entry.size = -1;
        break;
      case 'unknownTemplate':
        entry.template = 'no-such-template';
        break;
      case 'badDuration':
        entry.drainTimeout = '5 minutes';
        break;
      case 'unknownField':
        entry.replicas = 3;
        break;
      case 'expiryOrder':
        entry.expiry = { eligibleAge: '2h', forcedAge: '1h' };
        break;
      case 'badName':
        tenant['bad name!'] = entry;
        return config;
      case 'notAnObject':
        return { ...config, groups: 42 };
    }
    tenant[g.spec.group] = entry;
    return config;
  }

  private renderGroup(g: GroupState, options: RenderOptions = {}): ConfigObject {
    const out: ConfigObject = { size: g.size, template: g.template, maxSurge: g.spec.maxSurge + (options.surgeBonus ?? 0) };
    const sizing = g.spec.sizing;
    if (sizing) {
      out.min = sizing.min;
      out.max = sizing.max;
      if (!this.schedulesLifted && !options.withoutSchedules && sizing.schedules.length > 0) out.schedules = sizing.schedules.map((sc) => ({ cron: sc.cron, timezone: sc.timezone, size: sc.size }));
      const a = sizing.autoscale;
      if (a && !this.schedulesLifted) {
        out.autoscale = {
          prometheus: 'http://prometheus.sim:9090',
          query: loadQuery(g.spec.tenant, g.spec.group),
          targetPerInstance: LOAD_PER_INSTANCE,
          interval: formatDuration(a.intervalMs),
          scaleUpCooldown: options.withoutCooldowns ? '0s' : formatDuration(a.scaleUpCooldownMs),
          scaleDownCooldown: options.withoutCooldowns ? '0s' : formatDuration(a.scaleDownCooldownMs),
          maxStepDown: options.withoutCooldowns ? '100%' : quantity(a.maxStepDown),
        };
      }
    }
    if (g.spec.drainTimeoutMs !== null) out.drainTimeout = formatDuration(g.spec.drainTimeoutMs);
    if (g.spec.startupTimeoutMs !== null) out.startupTimeout = formatDuration(g.spec.startupTimeoutMs);
    if (g.spec.eligibleAgeMs > 0 || g.spec.forcedAgeMs > 0) {
      out.expiry = { eligibleAge: formatDuration(g.spec.eligibleAgeMs), forcedAge: formatDuration(g.spec.forcedAgeMs) };
    }
    const budgets = options.withoutBudgets ? [] : this.budgetsOf(g);
    const maxUnhealthy = options.withoutBrake || this.brakeLifted ? null : g.spec.maxUnhealthy;
    out.disruption = {
      cancelHold: formatDuration(g.spec.cancelHoldMs),
      ...(g.spec.maxDrainTimeoutMs === null ? {} : { maxDrainTimeout: formatDuration(g.spec.maxDrainTimeoutMs) }),
      ...(budgets.length > 0 ? { budgets: budgets.map(renderBudget) } : {}),
      ...(maxUnhealthy === null ? {} : { maxUnhealthy: quantity(maxUnhealthy) }),
    };
    return out;
  }
}
