/**
 * Scale-out: two shards side by side on one etcd and one cloud, two replicas each. Each shard
 * elects its own leader, manages only the groups its config lists (and only instances tagged
 * with its shard), and keeps its operator decisions apart; a failover in one leaves the other
 * alone.
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pino } from 'pino';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { stringify } from 'yaml';
import { startDroverServer, type DroverServer } from '../../src/app/drover-server.js';
import { SimProvider, SystemClock } from '../../src/index.js';
import { EtcdCluster, describeWithEtcd, freePort } from '../helpers/etcd-cluster.js';

let cluster: EtcdCluster;
let dir: string;
const clock = new SystemClock();
const cloud = new SimProvider({ clock, seed: 3 });
const servers: Record<'a' | 'b', DroverServer[]> = { a: [], b: [] };

async function replica(shard: 'a' | 'b', index: number, groups: Record<string, unknown>): Promise<DroverServer> {
  const port = await freePort();
  const configPath = join(dir, `${shard}${index}.yaml`);
  writeFileSync(
    configPath,
    stringify({
      server: { listen: `127.0.0.1:${port}`, dataDir: join(dir, `${shard}${index}`), advertise: `http://127.0.0.1:${port}` },
      provider: { kind: 'sim' },
      leader: { kind: 'etcd', endpoints: cluster.endpoints, ttl: '2s' },
      shard: { id: `shard-${shard}`, healthCheckInterval: '1s', startupTimeout: '1m', defaultDrainTimeout: '1m' },
      templates: { web: { image: 'web:1' } },
      groups,
    }),
  );
  const server = await startDroverServer({ configPath, logger: pino({ level: 'silent' }), clock, provider: cloud });
  servers[shard].push(server);
  return server;
}

async function until(what: string, check: () => boolean, timeoutMs = 10_000): Promise<void> {
  const started = Date.now();
  while (!check()) {
    if (Date.now() - started > timeoutMs) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

const leaderOf = (shard: 'a' | 'b'): DroverServer[] => servers[shard].filter((s) => s.elector.isLeader());
const tagged = (shard: string, group: string): number => cloud.instances().filter((i) => i.tags['drover:shard'] === shard && i.tags['drover:group'] === group).length;

describeWithEtcd('two shards side by side', () => {
  beforeAll(async () => {
    cluster = await EtcdCluster.start(3);
    dir = mkdtempSync(join(tmpdir(), 'drover-shards-'));
    for (let i = 0; i < 2; i++) {
      await replica('a', i, { default: { api: { size: 2, template: 'web' } } });
      await replica('b', i, { default: { jobs: { size: 3, template: 'web' } }, other: { batch: { size: 1, template: 'web' } } });
    }
  }, 30_000);
  afterAll(async () => {
    for (const s of [...servers.a, ...servers.b]) await s.stop();
    cluster?.close();
    rmSync(dir, { recursive: true, force: true });
  });

  it('elects one leader per shard; each brings only its own groups to size in the shared cloud', async () => {
    await until('one leader per shard', () => leaderOf('a').length === 1 && leaderOf('b').length === 1);
    await until('followers know their leader', () => [...servers.a, ...servers.b].every((s) => s.elector.leaderAddress() !== null));
    for (const shard of ['a', 'b'] as const) {
      for (const s of servers[shard]) expect(s.elector.leaderAddress()).toBe(leaderOf(shard)[0]!.url);
    }
    await until('groups at size', () => tagged('shard-a', 'api') === 2 && tagged('shard-b', 'jobs') === 3 && tagged('shard-b', 'batch') === 1);
    const [a] = leaderOf('a');
    expect(a!.db.listInstances().map((i) => i.group)).toEqual(['api', 'api']);
    expect(a!.reconciler.planAll().map((p) => `${p.tenant}/${p.group}`)).toEqual(['default/api']);
  });

  it('a change through a follower of one shard goes to that shard\'s leader and stays in that shard', async () => {
    const follower = servers.b.find((s) => !s.elector.isLeader())!;
    const res = await fetch(`${follower.url}/v1/groups/default/jobs/size`, { method: 'PUT', headers: { 'Content-Type': 'application/json' }, body: '{"size":4}' });
    expect(res.status, await res.text()).toBe(200);
    await until('shard b scaled', () => tagged('shard-b', 'jobs') === 4);
    // Shard a knows nothing of it: its operator state (only its own group's records, such as when
    // it first saw api's size) and its groups are its own.
    for (const s of servers.a) expect(s.reconciler.operatorState.list('').map((e) => e.key).filter((k) => !k.endsWith('/default/api'))).toEqual([]);
    expect((await fetch(`${servers.a[0]!.url}/v1/groups/default/jobs`)).status).toBe(404);
    await until('b follower sees the size', () => follower.reconciler.effectiveSettings(follower.config(), 'default', 'jobs')?.size === 4);
  });

  it('a failover in one shard leaves the other shard\'s leader in place', async () => {
    const [aLeader] = leaderOf('a');
    const [bLeader] = leaderOf('b');
    await aLeader!.stop();
    servers.a = servers.a.filter((s) => s !== aLeader);
    await until('shard a has a new leader', () => leaderOf('a').length === 1, 5_000);
    expect(leaderOf('b')).toEqual([bLeader]);
    expect(tagged('shard-a', 'api')).toBe(2);
  });
});
