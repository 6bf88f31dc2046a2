/**
 * Disruption budgets (pure): how many more instances of a group may be voluntarily disrupted now,
 * for each voluntary reason. A budget caps the instances of the group currently disrupted for any
 * of its reasons (draining for them, or waiting for a replacement to become healthy); with a
 * schedule it applies only inside its window. Several active budgets: the most restrictive one
 * decides for each reason.
 */
import { CronWindow } from '../config/cron.js';
import type { DisruptionSettings, BudgetSpec, Quantity, VoluntaryReason } from '../config/index.js';
import { VOLUNTARY_REASONS } from '../config/index.js';

/** A count, or a percentage of `size` rounded up. */
export function resolveQuantity(q: Quantity, size: number): number {
  return 'count' in q ? q.count : Math.ceil((size * q.percent) / 100);
}

/**
 * A budget's max for a group of `size`. A percentage of a group scaled to zero is taken of one
 * instance: otherwise it would be 0, and the scale-down to zero it governs could never start.
 */
export function resolveBudgetMax(q: Quantity, size: number): number {
  return resolveQuantity(q, 'percent' in q ? Math.max(size, 1) : size);
}

const windows = new Map<string, CronWindow>();

/** A budget's window (one CronWindow per schedule, duration and zone, kept: they are pure). */
export function budgetWindow(spec: NonNullable<BudgetSpec['window']>): CronWindow {
  const key = `${spec.schedule}|${spec.durationMs}|${spec.timezone}`;
  let w = windows.get(key);
  if (!w) {
    w = new CronWindow(spec.schedule, spec.durationMs, spec.timezone);
    windows.set(key, w);
  }
  return w;
}

export function describeBudget(b: BudgetSpec): string {
  const max = 'count' in b.max ? String(b.max.count) : `${b.max.percent}%`;
  const reasons = b.reasons.length === VOLUNTARY_REASONS.length ? 'all voluntary reasons' : b.reasons.join(', ');
  const window = b.window ? `, ${b.window.schedule} for ${Math.round(b.window.durationMs / 60_000)}m (${b.window.timezone})` : '';
  return `disruption.budgets[${b.index}] (max ${max}, ${reasons}${window})`;
}

interface ActiveBudget {
  spec: BudgetSpec;
  max: number;
  used: number;
  until: Date | null;
}

export interface ReasonBudget {
  /** How many more may be disrupted for this reason now; null = no active budget covers it. */
  allowed: number | null;
  /** Instances disrupted now for this reason. */
  used: number;
  /** The budget that sets `allowed`, described. */
  limitedBy: string | null;
  /** When the limiting budget's window closes. */
  until: Date | null;
}

/** Tracks budget use while a plan is built: `take` records a disruption just planned. */
export class BudgetTracker {
  private readonly active: ActiveBudget[] = [];
  private readonly usedByReason: Record<VoluntaryReason, number>;
  /** The next time a window opens or closes (the plan should look again then). */
  readonly nextChange: number | null;

  constructor(settings: DisruptionSettings, size: number, used: Record<VoluntaryReason, number>, now: number) {
    this.usedByReason = { ...used };
    let next: number | null = null;
    const note = (t: number): void => {
      if (t > now && (next === null || t < next)) next = t;
    };
    for (const spec of settings.budgets) {
      let until: Date | null = null;
      if (spec.window) {
        const w = budgetWindow(spec.window);
        const current = w.current(new Date(now));
        const opens = w.nextStart(new Date(now));
        if (opens) note(opens.getTime());
        if (!current) continue;
        until = current.end;
        note(current.end.getTime());
      }
      const budgetUsed = spec.reasons.reduce((sum, r) => sum + (used[r] ?? 0), 0);
      this.active.push({ spec, max: resolveBudgetMax(spec.max, size), used: budgetUsed, until });
    }
    this.nextChange = next;
  }

  /** Allowance for a reason under the most restrictive active budget covering it. */
  reason(reason: VoluntaryReason): ReasonBudget {
    let best: ActiveBudget | null = null;
    for (const b of this.active) {
      if (!b.spec.reasons.includes(reason)) continue;
      if (!best || b.max - b.used < best.max - best.used) best = b;
    }
    return {
      allowed: best ? Math.max(0, best.max - best.used) : null,
      used: this.usedByReason[reason] ?? 0,
      limitedBy: best ? describeBudget(best.spec) : null,
      until: best?.until ?? null,
    };
  }

  allows(reason: VoluntaryReason): boolean {
    const r = this.reason(reason);
    return r.allowed === null || r.allowed > 0;
  }

  /** Records one more disruption for `reason` in every budget that covers it. */
  take(reason: VoluntaryReason): void {
    this.usedByReason[reason] = (this.usedByReason[reason] ?? 0) + 1;
    for (const b of this.active) if (b.spec.reasons.includes(reason)) b.used++;
  }

  all(): Record<VoluntaryReason, ReasonBudget> {
    const out = {} as Record<VoluntaryReason, ReasonBudget>;
    for (const r of VOLUNTARY_REASONS) out[r] = this.reason(r);
    return out;
  }
}
