/**
 * What a plan shows an operator beyond what the pure planner can know: whether this server may
 * act at all, creates waiting for the provider's rate limit, and since when each block has stood
 * (remembered from the plans applied so far, per group). The planner's own blocks pass through
 * unchanged, among them `LaunchHookPending`: an instance that waits for its launch hook (until its
 * timeout) and is not in service meanwhile.
 */
import type { Block, Plan } from './plan.js';

/** What the running reconciler knows at the moment a plan is shown. */
export interface PlanSurroundings {
  leader: boolean;
  /** Creates of this group waiting for a provider call slot. */
  waitingCreates: number;
  /** When the next create may go out (ms), if the rate limit says. */
  nextCreateAt: number | null;
  nowMs: number;
}

function blockKey(b: Block): string {
  return `${b.code}|${b.instanceId ?? ''}`;
}

/** Per group, since when (ms) each block of its applied plans has stood. */
export class BlockHistory {
  private readonly since = new Map<string, Map<string, number>>();

  /** Remembers when each block of an applied plan first appeared; blocks gone are forgotten. */
  track(groupKey: string, plan: Plan, nowMs: number): void {
    const previous = this.since.get(groupKey);
    const next = new Map<string, number>();
    for (const b of plan.blocked) {
      const k = blockKey(b);
      next.set(k, previous?.get(k) ?? nowMs);
    }
    if (next.size > 0) this.since.set(groupKey, next);
    else this.since.delete(groupKey);
  }

  /** The plan with what the planner cannot know added (see the module comment). */
  explain(groupKey: string, plan: Plan, now: PlanSurroundings): Plan {
    const blocked = [...plan.blocked];
    if (!now.leader) blocked.unshift({ code: 'NotLeader', message: 'this server is not the shard leader: it plans, the leader acts' });
    if (now.waitingCreates > 0) {
      const next = now.nextCreateAt;
      blocked.push({
        code: 'RateLimited',
        message: `${now.waitingCreates} create(s) wait for the provider's rate limit${next !== null && next > now.nowMs ? ` (next create slot ${new Date(next).toISOString()})` : ''}`,
      });
    }
    const since = this.since.get(groupKey);
    return {
      ...plan,
      blocked: blocked.map((b) => {
        const at = since?.get(blockKey(b));
        return at !== undefined && b.since === undefined ? { ...b, since: new Date(at) } : b;
      }),
    };
  }
}
