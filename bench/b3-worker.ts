/**
 * B3's worker processes (`b3-at-rest.ts` forks one per step, so each step's peak RSS, from the
 * OS, is its own): `populate` writes the fleet (Drover's database and the cloud's table), `pass`
 * runs one full InitialReconcile on them in a fresh process, `fleet` serves the dashboard's
 * first requests from the populated database over real HTTP.
 *
 *   tsx bench/b3-worker.ts <populate|pass|fleet> '<json options>'
 */
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { SystemClock, openLocalDb, templateHash } from '../src/index.js';
import { TableCloud, writeCloud, type CloudRow } from './b3-cloud.js';
import { PROVIDER_RATE, TEMPLATES, buildEnv, maxRssMb, now, percentile, round, shardConfig } from './common.js';

export interface B3Shape {
  tenants: number;
  groupsPerTenant: number;
  groupSize: number;
}

export interface B3WorkerOptions extends B3Shape {
  dir: string;
  /** `pass`: latency of each page of the cloud's list (0: none). */
  pageLatencyMs?: number;
}

export interface B3PopulateResult {
  /** Writing the rows (Drover's and the cloud's). */
  populateMs: number;
  /**
   * The first start on them (a full pass that also writes what a previous run leaves behind:
   * each group's wake-up timer and configured-size bookkeeping, 3 small writes a group).
   */
  firstPassMs: number;
  maxRssMb: number;
}

export interface B3PassResult {
  wallMs: number;
  /** CPU time of this process (all its threads) during the pass: less sensitive to a shared machine's load than wallMs. */
  cpuMs: number;
  /** The provider list inside the pass (pages, their latency and building the instances). */
  listMs: number;
  pages: number;
  listed: number;
  reconciled: number;
  creates: number;
  deletes: number;
  otherCalls: number;
  errors: string[];
  groupP50Ms: number;
  groupP99Ms: number;
  groupMaxMs: number;
  /** OS peak RSS of this process (getrusage), read right after the pass: loading Node, tsx and Drover, and the pass. */
  maxRssMb: number;
  /** RSS when the pass started (Node, tsx, Drover's modules, the open database). */
  rssBeforeMb: number;
  /** Groups whose plan (after the pass) had any action: must be 0. */
  groupsWithActions: number;
  planP50Ms: number;
  planP99Ms: number;
}

export const DB_FILE = 'drover.db';
export const CLOUD_FILE = 'cloud.db';
export const groupName = (g: number): string => `g${String(g).padStart(3, '0')}`;
export const tenantName = (t: number): string => `t${String(t).padStart(3, '0')}`;

export function b3Config(shape: B3Shape): Record<string, unknown> {
  const groups: Record<string, Record<string, { size: number; template: string }>> = {};
  for (let t = 0; t < shape.tenants; t++) {
    const tenant: Record<string, { size: number; template: string }> = {};
    for (let g = 0; g < shape.groupsPerTenant; g++) tenant[groupName(g)] = { size: shape.groupSize, template: 'web' };
    groups[tenantName(t)] = tenant;
  }
  return { shard: shardConfig(), templates: TEMPLATES, groups, provider: { kind: 'sim', maxCallsPerSecond: PROVIDER_RATE } };
}

/**
 * Writes the fleet as a previous run would have left it: Drover's rows and the cloud's side with
 * Drover's tags, then one pass of Drover on them (the previous run), whose bookkeeping the
 * measured pass (a restart) finds.
 */
async function populate(o: B3WorkerOptions): Promise<B3PopulateResult> {
  const started = now();
  const clock = new SystemClock();
  const shard = (shardConfig() as { id: string }).id;
  const hash = templateHash(TEMPLATES.web);
  const nowMs = clock.nowMs();
  const createdAt = new Date(nowMs - 3_600_000);
  const healthAt = new Date(nowMs - 5_000);
  const db = openLocalDb(join(o.dir, DB_FILE));
  const cloud: CloudRow[] = [];
  const flushCloud = (): void => {
    writeCloud(join(o.dir, CLOUD_FILE), shard, cloud);
    cloud.length = 0;
  };
  let n = 0;
  for (let t = 0; t < o.tenants; t++) {
    const tenant = tenantName(t);
    db.transaction(() => {
      for (let g = 0; g < o.groupsPerTenant; g++) {
        const group = groupName(g);
        for (let k = 0; k < o.groupSize; k++) {
          const id = `i-${String(n).padStart(16, '0')}`;
          const providerId = `sim-b3-${String(n).padStart(7, '0')}`;
          n++;
          db.insertInstance({ id, tenant, group, templateName: 'web', templateHash: hash, createReason: 'scaleUp', createdAt, providerId, status: 'running', confirmedAt: createdAt, healthAt });
          cloud.push({ providerId, instanceId: id, tenant, group, templateName: 'web', templateHash: hash, createdAt });
        }
      }
    });
    flushCloud();
  }
  db.close();
  const populateMs = now() - started;
  const first = await pass(o);
  if (first.reconciled !== o.tenants * o.groupsPerTenant || first.groupsWithActions > 0) throw new Error(`B3: the first pass reconciled ${first.reconciled} groups, ${first.groupsWithActions} with actions`);
  return { populateMs: round(populateMs, 0), firstPassMs: first.wallMs, maxRssMb: round(maxRssMb(), 1) };
}

async function pass(o: B3WorkerOptions): Promise<B3PassResult> {
  const clock = new SystemClock();
  const provider = new TableCloud(join(o.dir, CLOUD_FILE), { clock, pageLatencyMs: o.pageLatencyMs ?? 0 });
  const listTimes: number[] = [];
  const list = provider.list.bind(provider);
  provider.list = async (tags) => {
    const t0 = now();
    try {
      return await list(tags);
    } finally {
      listTimes.push(now() - t0);
    }
  };
  const durations: number[] = [];
  const env = buildEnv({
    config: b3Config(o),
    dir: o.dir,
    provider,
    observer: { reconciled: (outcome, ms) => void (outcome === 'ok' && durations.push(ms)) },
  });
  const rssBeforeMb = process.memoryUsage.rss() / 1024 / 1024;
  const cpuBefore = process.cpuUsage();
  const started = now();
  await env.reconciler.start();
  await env.reconciler.idle();
  const wallMs = now() - started;
  const cpu = process.cpuUsage(cpuBefore);
  // The process's peak so far (the OS's figure): everything above ran only to load and pass.
  const peak = maxRssMb();

  const planMs: number[] = [];
  let groupsWithActions = 0;
  for (let t = 0; t < o.tenants; t++) {
    for (let g = 0; g < o.groupsPerTenant; g++) {
      const t0 = now();
      const plan = env.reconciler.plan(tenantName(t), groupName(g));
      planMs.push(now() - t0);
      if (plan.actions.length > 0) groupsWithActions++;
    }
  }
  await env.reconciler.stop();
  env.db.close();
  provider.close();
  return {
    wallMs: round(wallMs, 1),
    cpuMs: round((cpu.user + cpu.system) / 1000, 0),
    listMs: round(listTimes.reduce((a, b) => a + b, 0), 1),
    pages: provider.stats.pages,
    listed: provider.stats.listed,
    reconciled: durations.length,
    creates: provider.stats.create,
    deletes: provider.stats.delete,
    otherCalls: provider.stats.status + provider.stats.setTags,
    errors: env.errors.slice(0, 5),
    groupP50Ms: percentile(durations, 50),
    groupP99Ms: percentile(durations, 99),
    groupMaxMs: durations.length ? Math.max(...durations) : 0,
    maxRssMb: round(peak, 1),
    rssBeforeMb: round(rssBeforeMb, 1),
    groupsWithActions,
    planP50Ms: round(percentile(planMs, 50), 3),
    planP99Ms: round(percentile(planMs, 99), 3),
  };
}

async function main(): Promise<void> {
  const [mode, json] = process.argv.slice(2);
  const o = JSON.parse(json ?? '{}') as B3WorkerOptions;
  let message: { ok: true; result: unknown } | { ok: false; error: string };
  try {
    if (mode === 'populate') message = { ok: true, result: await populate(o) };
    else if (mode === 'pass') message = { ok: true, result: await pass(o) };
    else if (mode === 'fleet') message = { ok: true, result: await (await import('./b3-fleet-view.js')).fleetView(o) };
    else throw new Error(`b3-worker: unknown mode "${String(mode)}"`);
  } catch (err) {
    message = { ok: false, error: err instanceof Error ? (err.stack ?? err.message) : String(err) };
  }
  await new Promise<void>((resolve) => process.send?.(message, () => resolve()));
  process.exit(0);
}

// Only as a process of its own (b3-at-rest.ts imports this module for its types and names).
if (process.argv[1] === fileURLToPath(import.meta.url)) void main();
