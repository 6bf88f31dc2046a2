/**
 * Autoscale in HA: two replicas of one shard on a real etcd (their decisions in etcd, writes
 * fenced by the lease) and a loopback stand-in for Prometheus's query API. Only the leader
 * queries and decides; the follower reads the leader's decisions from etcd; after a failover the
 * new leader carries on from the recorded state (the stabilisation window, the cooldowns) and
 * audits only its own changes.
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
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
let prometheus: Server;
let value = 250;
let queries = 0;
const clock = new SystemClock();
const cloud = new SimProvider({ clock, seed: 5 });
const replicas: DroverServer[] = [];

async function replica(index: number): Promise<DroverServer> {
  const port = await freePort();
  const configPath = join(dir, `r${index}.yaml`);
  const url = `http://127.0.0.1:${(prometheus.address() as AddressInfo).port}`;
  writeFileSync(
    configPath,
    stringify({
      server: { listen: `127.0.0.1:${port}`, dataDir: join(dir, `r${index}`), advertise: `http://127.0.0.1:${port}` },
      provider: { kind: 'sim' },
      leader: { kind: 'etcd', endpoints: cluster.endpoints, ttl: '2s' },
      shard: { id: 'auto', healthCheckInterval: '1s', startupTimeout: '1m', defaultDrainTimeout: '0s' },
      templates: { web: { image: 'web:1' } },
      groups: {
        default: {
          web: {
            size: 1,
            max: 20,
            template: 'web',
            autoscale: { prometheus: url, query: 'sum(load)', targetPerInstance: 100, interval: '200ms', queryTimeout: '1s', scaleUpCooldown: '1s', scaleDownCooldown: '1m' },
          },
        },
      },
    }),
  );
  const server = await startDroverServer({ configPath, logger: pino({ level: 'silent' }), clock, provider: cloud });
  replicas.push(server);
  return server;
}

async function until<T>(what: string, read: () => T, check: (v: T) => boolean, timeoutMs = 15_000): Promise<T> {
  const started = Date.now();
  for (;;) {
    const v = read();
    if (check(v)) return v;
    if (Date.now() - started > timeoutMs) throw new Error(`timed out waiting for ${what}; last: ${JSON.stringify(v)}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

const leaders = (): DroverServer[] => replicas.filter((s) => s.elector.isLeader());
const decision = (s: DroverServer) => s.reconciler.sizeDecision('default', 'web');
const autoscaleAudits = (s: DroverServer) => s.db.listAudit({ tenant: 'default', group: 'web' }).filter((a) => a.reason === 'autoscale');
const queriesCounted = async (s: DroverServer): Promise<string[]> => (await (await fetch(`${s.url}/metrics`)).text()).split('\n').filter((l) => l.startsWith('drover_autoscale_queries_total{'));

describeWithEtcd('autoscale with two replicas on etcd', () => {
  beforeAll(async () => {
    cluster = await EtcdCluster.start(1);
    dir = mkdtempSync(join(tmpdir(), 'drover-autoscale-ha-'));
    prometheus = createServer((req, res) => {
      req.resume();
      req.on('end', () => {
        queries++;
        res.writeHead(200, { 'Content-Type': 'application/json' });
        res.end(JSON.stringify({ status: 'success', data: { resultType: 'vector', result: [{ metric: {}, value: [Date.now() / 1000, String(value)] }] } }));
      });
    });
    await new Promise<void>((resolve) => prometheus.listen(0, '127.0.0.1', resolve));
    await replica(0);
    await replica(1);
  }, 30_000);

  afterAll(async () => {
    for (const s of replicas) await s.stop();
    cluster?.close();
    prometheus?.closeAllConnections();
    await new Promise<void>((resolve) => prometheus?.close(() => resolve()));
    rmSync(dir, { recursive: true, force: true });
  });

  it('only the leader queries and decides; the follower reads its decisions from etcd', async () => {
    const [leader] = await until('one leader', leaders, (l) => l.length === 1);
    const follower = replicas.find((s) => s !== leader)!;
    await until('the leader scaled to 3', () => decision(leader!)?.size, (s) => s === 3);
    await until('the follower sees it', () => decision(follower), (d) => d?.size === 3 && d.source === 'autoscale' && d.autoscale?.lastValue === 250);
    expect(await queriesCounted(follower)).toEqual([]);
    expect((await queriesCounted(leader!)).some((l) => /result="ok"} [1-9]/.test(l))).toBe(true);
    expect(autoscaleAudits(leader!).map((a) => a.detail)).toEqual(['size 1 -> 3: value 250 / 100 per instance: 3']);
    expect(autoscaleAudits(follower)).toEqual([]);
  });

  it('after a failover the new leader carries on from the recorded state and audits only its own changes', async () => {
    const [old] = leaders();
    const next = replicas.find((s) => s !== old)!;
    await old!.stop();
    await until('the other replica leads', () => next.elector.isLeader(), (l) => l);
    value = 80; // 1: but the old leader's recommendations of 3 are still in the 1m window
    await until('the new leader decided', () => decision(next)?.autoscale?.lastValue, (v) => v === 80);
    expect(decision(next)!.size).toBe(3);
    expect(decision(next)!.autoscale!.lastDecision).toBe('size kept at 3: value 80 / 100 per instance: 1; highest in the last 1m: 3');
    value = 640;
    await until('the new leader scaled to 7', () => decision(next)?.size, (s) => s === 7);
    expect(autoscaleAudits(next).map((a) => a.detail)).toEqual(['size 3 -> 7: value 640 / 100 per instance: 7']);
    // Prometheus gone: the size stays, the block shows in the plan.
    expect(queries).toBeGreaterThan(0);
    prometheus.closeAllConnections();
    await new Promise<void>((resolve) => prometheus.close(() => resolve()));
    const plan = await until('blocked', () => next.reconciler.plan('default', 'web'), (p) => p.blocked.some((b) => b.code === 'AutoscaleBlocked'));
    expect(plan.summary.size).toBe(7);
    expect(autoscaleAudits(next).map((a) => a.action)).toEqual(['scale', 'autoscaleBlocked']);
  });
});
