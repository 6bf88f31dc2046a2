/**
 * B3 fleet at rest: 100,000 running, healthy instances in 2,000 groups, every group at size,
 * nothing to do. Timed: a full InitialReconcile (provider list + sync + a plan of every group),
 * from `start()` until `idle()`. Compared with reading the same rows from SQLite raw.
 */
import Database from 'better-sqlite3';
import { join } from 'node:path';
import { SimProvider, SystemClock, TAG, openLocalDb, templateHash } from '../src/index.js';
import { instanceTags } from '../src/instances/index.js';
import { PROVIDER_RATE, RssSampler, TEMPLATES, buildEnv, maxRssMb, now, percentile, removeDir, round, shardConfig, tempDir } from './common.js';

export const B3_TENANTS = 20;
export const B3_GROUPS_PER_TENANT = 100;
export const B3_GROUP_SIZE = 50;

export interface B3Result {
  instances: number;
  groups: number;
  wallMs: number;
  targetMs: number;
  /** `SELECT *` of every instance row with better-sqlite3, rows as arrays (its fastest way). */
  rawReadMs: number;
  /** The same, rows as objects (better-sqlite3's default). */
  rawReadObjectsMs: number;
  /** wallMs / rawReadMs. */
  ratio: number;
  /** Per-group reconcile during the pass (observer.reconciled; whole ms, 16 groups interleave). */
  groupP50Ms: number;
  groupP99Ms: number;
  groupMaxMs: number;
  /** Per-group plan alone after the pass (Reconciler.plan: store reads + planGroup), one at a time. */
  planP50Ms: number;
  planP99Ms: number;
  /** Groups reconciled (must equal `groups`). */
  reconciled: number;
  /** Provider mutations during the pass (must be 0: nothing to do). */
  creates: number;
  deletes: number;
  /** Peak RSS of the benchmark process during the pass (MB), and before it. */
  rssMb: number;
  rssBeforeMb: number;
  /** Process-lifetime peak RSS (getrusage), including populating the fleet. */
  maxRssMb: number;
  populateMs: number;
}

const groupName = (g: number): string => `g${String(g).padStart(3, '0')}`;
const tenantName = (t: number): string => `t${String(t).padStart(2, '0')}`;

function config(): Record<string, unknown> {
  const groups: Record<string, Record<string, { size: number; template: string }>> = {};
  for (let t = 0; t < B3_TENANTS; t++) {
    const tenant: Record<string, { size: number; template: string }> = {};
    for (let g = 0; g < B3_GROUPS_PER_TENANT; g++) tenant[groupName(g)] = { size: B3_GROUP_SIZE, template: 'web' };
    groups[tenantName(t)] = tenant;
  }
  return { shard: shardConfig(), templates: TEMPLATES, groups, provider: { kind: 'sim', maxCallsPerSecond: PROVIDER_RATE } };
}

/** Writes the fleet into a fresh database file and a SimProvider, as a previous run would have left them. */
function populate(dir: string, clock: SystemClock, provider: SimProvider, shardId: string): void {
  const db = openLocalDb(join(dir, 'drover.db'));
  const hash = templateHash(TEMPLATES.web);
  const nowMs = clock.nowMs();
  const createdAt = new Date(nowMs - 3_600_000);
  const healthAt = new Date(nowMs - 5_000);
  let n = 0;
  db.transaction(() => {
    for (let t = 0; t < B3_TENANTS; t++) {
      for (let g = 0; g < B3_GROUPS_PER_TENANT; g++) {
        for (let k = 0; k < B3_GROUP_SIZE; k++) {
          const id = `i-${String(n).padStart(16, '0')}`;
          const providerId = `sim-b3-${String(n).padStart(6, '0')}`;
          n++;
          const tenant = tenantName(t);
          const group = groupName(g);
          db.insertInstance({
            id,
            tenant,
            group,
            templateName: 'web',
            templateHash: hash,
            createReason: 'scaleUp',
            createdAt,
            providerId,
            status: 'running',
            confirmedAt: createdAt,
            healthAt,
          });
          const tags = instanceTags(shardId, {
            instanceId: id,
            tenant,
            group,
            templateName: 'web',
            template: TEMPLATES.web,
            templateHash: hash,
            reason: 'scaleUp',
            createdAt,
          });
          if (tags[TAG.shard] !== shardId) throw new Error('B3: shard tag mismatch');
          provider.inject({ providerId, status: 'running', tags, idempotencyKey: id, createdAt });
        }
      }
    }
  });
  db.close();
}

export async function runB3(): Promise<B3Result> {
  const clock = new SystemClock();
  const dir = tempDir();
  const provider = new SimProvider({ clock, seed: 3, maxCallsPerSecond: PROVIDER_RATE });
  const cfg = config();
  const shardId = (cfg.shard as { id: string }).id;
  const populateStarted = now();
  populate(dir, clock, provider, shardId);
  const populateMs = now() - populateStarted;
  global.gc?.();

  const durations: number[] = [];
  const env = buildEnv({
    config: cfg,
    dir,
    provider,
    observer: { reconciled: (outcome, ms) => void (outcome === 'ok' && durations.push(ms)) },
  });
  const groups = B3_TENANTS * B3_GROUPS_PER_TENANT;
  try {
    const before = { create: provider.stats.create, delete: provider.stats.delete };
    const rssBeforeMb = process.memoryUsage.rss() / 1024 / 1024;
    const rss = new RssSampler(5);
    const started = now();
    await env.reconciler.start();
    await env.reconciler.idle();
    const wallMs = now() - started;
    const rssMb = rss.stop();
    const creates = provider.stats.create - before.create;
    const deletes = provider.stats.delete - before.delete;
    if (creates !== 0 || deletes !== 0) throw new Error(`B3: the fleet at rest had work to do (${creates} creates, ${deletes} deletes)`);
    if (durations.length !== groups) throw new Error(`B3: ${durations.length} groups reconciled, expected ${groups}`);

    // Each group's plan alone (the dry run: the same store reads and planGroup).
    const planMs: number[] = [];
    for (let t = 0; t < B3_TENANTS; t++) {
      for (let g = 0; g < B3_GROUPS_PER_TENANT; g++) {
        const planStarted = now();
        const plan = env.reconciler.plan(tenantName(t), groupName(g));
        planMs.push(now() - planStarted);
        if (plan.actions.length > 0) throw new Error(`B3: ${tenantName(t)}/${groupName(g)} has ${plan.actions.length} actions planned`);
      }
    }

    // The same rows, read raw from SQLite (a fresh connection, as the reconciler's was).
    const rawRead = (arrays: boolean): number => {
      const raw = new Database(env.dbPath, { readonly: true });
      const started = now();
      const rows = raw.prepare('SELECT * FROM instances').raw(arrays).all();
      const ms = now() - started;
      raw.close();
      if (rows.length !== groups * B3_GROUP_SIZE) throw new Error(`B3: raw read found ${rows.length} rows`);
      return ms;
    };
    const rawReadMs = rawRead(true);
    const rawReadObjectsMs = rawRead(false);

    return {
      instances: groups * B3_GROUP_SIZE,
      groups,
      wallMs: round(wallMs, 1),
      targetMs: 2_000,
      rawReadMs: round(rawReadMs, 1),
      rawReadObjectsMs: round(rawReadObjectsMs, 1),
      ratio: round(wallMs / rawReadMs, 2),
      groupP50Ms: percentile(durations, 50),
      groupP99Ms: percentile(durations, 99),
      groupMaxMs: Math.max(...durations),
      planP50Ms: round(percentile(planMs, 50), 3),
      planP99Ms: round(percentile(planMs, 99), 3),
      reconciled: durations.length,
      creates,
      deletes,
      rssMb: round(rssMb, 1),
      rssBeforeMb: round(rssBeforeMb, 1),
      maxRssMb: round(maxRssMb(), 1),
      populateMs: round(populateMs, 0),
    };
  } finally {
    await env.close();
    removeDir(dir);
  }
}
