/**
 * EtcdOperatorState on a real etcd: followers see the leader's writes through the watch, only
 * the current term can write, and a deposed leader's write fails even if it has not noticed.
 */
import { afterAll, afterEach, beforeAll, expect, it } from 'vitest';
import type { Etcd3 } from 'etcd3';
import { SystemClock } from '../../src/clock/index.js';
import { InvalidRequestError, NotLeaderError } from '../../src/errors/index.js';
import { EtcdElector, connectEtcd, type Fence } from '../../src/leader/index.js';
import { EtcdOperatorState, keys } from '../../src/state/index.js';
import { EtcdCluster, describeWithEtcd } from '../helpers/etcd-cluster.js';

let cluster: EtcdCluster;
const clients: Etcd3[] = [];
const closers: Array<() => Promise<void>> = [];
const clock = new SystemClock();
const AT = '2026-01-01T00:00:00.000Z';

function replica(name: string, shardId: string): { elector: EtcdElector; state: EtcdOperatorState } {
  const client = connectEtcd(cluster.endpoints);
  clients.push(client);
  const elector = new EtcdElector({ client, shardId, ttlMs: 2_000, address: () => `http://${name}`, clock, id: name });
  const state = new EtcdOperatorState({ client, shardId, fence: () => elector.fence(), clock });
  closers.push(() => elector.stop(), () => state.close());
  return { elector, state };
}

async function until(what: string, check: () => boolean, timeoutMs = 10_000): Promise<void> {
  const started = Date.now();
  while (!check()) {
    if (Date.now() - started > timeoutMs) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

describeWithEtcd('EtcdOperatorState on a real etcd cluster', () => {
  beforeAll(async () => {
    cluster = await EtcdCluster.start(3);
  }, 30_000);
  afterAll(() => cluster?.close());
  afterEach(async () => {
    for (const close of closers.splice(0)) await close();
    for (const c of clients.splice(0)) c.close();
  });

  it('shares the leader\'s writes with followers; refuses a follower\'s write; keeps entries for the next start', async () => {
    const a = replica('a', 's1');
    const b = replica('b', 's1');
    await a.state.start();
    await b.state.start();
    await a.elector.start();
    await until('a leads', () => a.elector.isLeader());
    await b.elector.start();
    const changed: string[] = [];
    b.state.onChange((k) => changed.push(k));
    await a.state.set(keys.size('default', 'web'), { size: 5, base: 3, at: AT, by: 'operator:alice' });
    expect(a.state.get<{ size: number }>(keys.size('default', 'web'))?.size).toBe(5);
    await until('b sees the write', () => b.state.get<{ size: number }>(keys.size('default', 'web'))?.size === 5);
    expect(changed).toEqual(['size/default/web']);
    await expect(b.state.set(keys.size('default', 'web'), { size: 9, base: 3, at: AT, by: 'x' })).rejects.toBeInstanceOf(NotLeaderError);
    await a.state.set('protect/i-1', { until: AT, at: AT, by: 'operator:alice' });
    await a.state.set('protect/i-1', null);
    await until('b sees the delete', () => changed.length === 3);
    expect(b.state.list('protect/')).toEqual([]);
    // A replica started later reads what is there.
    const c = replica('c', 's1');
    await c.state.start();
    expect(c.state.list('')).toEqual([{ key: 'size/default/web', value: { size: 5, base: 3, at: AT, by: 'operator:alice' } }]);
  });

  it('refuses the write of a deposed leader that still holds its old fence', async () => {
    const a = replica('a', 's2');
    const b = replica('b', 's2');
    await a.state.start();
    await a.elector.start();
    await until('a leads', () => a.elector.isLeader());
    const stale: Fence = a.elector.fence()!;
    await b.elector.start();
    await a.elector.stop(); // hands over to b
    await until('b leads', () => b.elector.isLeader());
    const deposed = new EtcdOperatorState({ client: clients[0]!, shardId: 's2', fence: () => stale, clock });
    closers.push(() => deposed.close());
    await expect(deposed.set(keys.size('default', 'web'), { size: 1, base: 3, at: AT, by: 'old' })).rejects.toThrow(/epoch \d+ is over.*not the shard leader/);
    await b.state.start();
    await b.state.set(keys.size('default', 'web'), { size: 2, base: 3, at: AT, by: 'new' });
    expect(b.state.get<{ by: string }>(keys.size('default', 'web'))?.by).toBe('new');
  });

  it('ignores and reports entries that are not JSON or do not fit their schema, at load and through the watch', async () => {
    const raw = connectEtcd(cluster.endpoints);
    clients.push(raw);
    const prefix = '/drover/s4/state/';
    await raw.put(`${prefix}size/default/web`).value('{not json');
    await raw.put(`${prefix}protect/i-1`).value(JSON.stringify({ until: 5, at: AT, by: 'x' }));
    await raw.put(`${prefix}hold/i-2`).value(JSON.stringify({ until: 'tomorrow', reason: 'r', by: 'x' }));
    await raw.put(`${prefix}drain/i-3`).value(JSON.stringify({ force: 'yes', at: AT, by: 'x' }));
    await raw.put(`${prefix}size/default/api`).value(JSON.stringify({ size: -1, base: 1, at: AT, by: 'x' }));
    await raw.put(`${prefix}surprise/x`).value('{}');
    await raw.put(`${prefix}drain/i-4`).value(JSON.stringify({ force: true, at: AT, by: 'operator:alice', extra: 'from a newer replica' }));
    const lines: Array<{ msg: string; obj: Record<string, unknown> }> = [];
    const logger = { debug: () => undefined, info: () => undefined, warn: (obj: object, msg?: string) => lines.push({ msg: msg ?? '', obj: obj as Record<string, unknown> }), error: () => undefined };
    const state = new EtcdOperatorState({ client: raw, shardId: 's4', fence: () => null, clock, logger });
    closers.push(() => state.close());
    await state.start();
    // Only the valid entry is there, without the field this version does not know.
    expect(state.list('')).toEqual([{ key: 'drain/i-4', value: { force: true, at: AT, by: 'operator:alice' } }]);
    const ignored = lines.filter((l) => l.msg === 'invalid operator state entry ignored');
    const problems = new Map(ignored.map((l) => [l.obj.key, String(l.obj.problem)]));
    expect([...problems.keys()].sort()).toEqual(
      ['drain/i-3', 'hold/i-2', 'protect/i-1', 'size/default/api', 'size/default/web', 'surprise/x'].map((k) => prefix + k),
    );
    expect(problems.get(`${prefix}size/default/web`)).toMatch(/^not JSON/);
    expect(problems.get(`${prefix}protect/i-1`)).toMatch(/^until: /);
    expect(problems.get(`${prefix}hold/i-2`)).toMatch(/until: must be an ISO 8601 time/);
    expect(problems.get(`${prefix}drain/i-3`)).toMatch(/^force: /);
    expect(problems.get(`${prefix}size/default/api`)).toMatch(/^size: /);
    expect(problems.get(`${prefix}surprise/x`)).toMatch(/no operator state kind "surprise"/);

    // Through the watch: a valid value is taken; garbage written over it removes it (treated as
    // absent, not left in force), and is reported.
    const changed: string[] = [];
    state.onChange((k) => changed.push(k));
    await raw.put(`${prefix}protect/i-5`).value(JSON.stringify({ until: AT, at: AT, by: 'operator:bob' }));
    await until('the valid protection is seen', () => state.get(keys.protection('i-5')) !== undefined);
    await raw.put(`${prefix}protect/i-5`).value(JSON.stringify({ until: AT, at: AT, by: 7 }));
    await until('the invalid protection is dropped', () => state.get(keys.protection('i-5')) === undefined);
    expect(changed).toEqual(['protect/i-5', 'protect/i-5']);
    expect(lines.some((l) => l.msg === 'invalid operator state entry ignored' && l.obj.key === `${prefix}protect/i-5` && /^by: /.test(String(l.obj.problem)))).toBe(true);
  });

  it('refuses to write a value that does not fit its key\'s schema', async () => {
    const a = replica('a', 's5');
    await a.state.start();
    await a.elector.start();
    await until('a leads', () => a.elector.isLeader());
    await expect(a.state.set(keys.size('default', 'web'), { size: 'five', base: 3, at: AT, by: 'x' })).rejects.toThrow(/^writing operator state size\/default\/web: size: /);
    await expect(a.state.set(keys.size('default', 'web'), { size: 'five', base: 3, at: AT, by: 'x' })).rejects.toBeInstanceOf(InvalidRequestError);
    expect(a.state.get(keys.size('default', 'web'))).toBeUndefined();
    const res = await clients[0]!.get('/drover/s5/state/size/default/web').string();
    expect(res).toBeNull();
  });

  it('keeps shards apart', async () => {
    const x = replica('x', 'shard-x');
    const y = replica('y', 'shard-y');
    for (const r of [x, y]) {
      await r.state.start();
      await r.elector.start();
    }
    await until('both lead their shard', () => x.elector.isLeader() && y.elector.isLeader());
    await x.state.set(keys.size('default', 'web'), { size: 4, base: 1, at: AT, by: 'x' });
    await y.state.set(keys.size('default', 'api'), { size: 7, base: 1, at: AT, by: 'y' });
    await new Promise((r) => setTimeout(r, 200));
    expect(x.state.list('').map((e) => e.key)).toEqual(['size/default/web']);
    expect(y.state.list('').map((e) => e.key)).toEqual(['size/default/api']);
  });
});
