/**
 * EtcdElector against a real 3-member etcd cluster on loopback: wins, hand-over, etcd member
 * and whole-cluster restarts (never two leaders at once), and the local deadline.
 */
import { afterAll, afterEach, beforeAll, expect, it } from 'vitest';
import type { Etcd3 } from 'etcd3';
import { SystemClock, type Clock, type TimerHandle } from '../../src/clock/index.js';
import { EtcdElector, connectEtcd } from '../../src/leader/index.js';
import { EtcdCluster, describeWithEtcd } from '../helpers/etcd-cluster.js';

/** The wall clock, plus an offset a test can jump (a process that was paused sees time jump). */
class JumpClock implements Clock {
  offset = 0;
  private readonly base = new SystemClock();
  now(): Date {
    return new Date(this.nowMs());
  }
  nowMs(): number {
    return Date.now() + this.offset;
  }
  schedule(atMs: number, fn: () => void): TimerHandle {
    return this.base.schedule(atMs - this.offset, fn);
  }
  sleep(ms: number): Promise<void> {
    return this.base.sleep(ms);
  }
}

let cluster: EtcdCluster;
const clients: Etcd3[] = [];
const electors: EtcdElector[] = [];

/** What the electors logged, shown when a wait times out. */
const logLines: string[] = [];

function elector(name: string, options: { ttlMs?: number; clock?: Clock } = {}): EtcdElector {
  const client = connectEtcd(cluster.endpoints);
  clients.push(client);
  const line = (level: string) => (obj: object, msg?: string): void => {
    logLines.push(`${new Date().toISOString()} ${name} ${level} ${msg ?? ''} ${JSON.stringify(obj)}`);
  };
  const logger = { debug: () => undefined, info: line('info'), warn: line('warn'), error: line('error') };
  const e = new EtcdElector({ client, shardId: 'unit', ttlMs: options.ttlMs ?? 2_000, address: () => `http://${name}`, clock: options.clock ?? new SystemClock(), id: name, logger });
  electors.push(e);
  return e;
}

async function until(what: string, check: () => boolean, timeoutMs = 10_000): Promise<number> {
  const started = Date.now();
  while (!check()) {
    if (Date.now() - started > timeoutMs) throw new Error(`timed out waiting for ${what}; electors said:\n${logLines.slice(-30).join('\n')}`);
    await new Promise((r) => setTimeout(r, 10));
  }
  return Date.now() - started;
}

/** Samples every elector every few ms while `during` runs; fails if two ever lead at once. */
async function neverTwoLeaders<T>(during: () => Promise<T>): Promise<{ result: T; samples: number }> {
  let samples = 0;
  let overlap: string | null = null;
  let done = false;
  const sampler = (async () => {
    while (!done) {
      const leading = electors.filter((e) => e.isLeader()).map((e) => e.id);
      samples++;
      if (leading.length > 1 && overlap === null) overlap = leading.join(', ');
      await new Promise((r) => setTimeout(r, 5));
    }
  })();
  try {
    const result = await during();
    return { result, samples };
  } finally {
    done = true;
    await sampler;
    expect(overlap, 'two leaders at once').toBeNull();
  }
}

describeWithEtcd(
  'EtcdElector on a real etcd cluster',
  () => {
    beforeAll(async () => {
      cluster = await EtcdCluster.start(3);
    }, 30_000);
    afterAll(() => cluster?.close());
    afterEach(async () => {
      logLines.length = 0;
      await Promise.all(electors.splice(0).map((e) => e.stop()));
      for (const c of clients.splice(0)) c.close();
      cluster.restartAll();
      await cluster.waitHealthy();
    });

    it('wins alone, with an epoch, and says so to listeners', async () => {
      const a = elector('a');
      const changes: boolean[] = [];
      a.onChange((leader) => changes.push(leader));
      await a.start();
      await until('a leads', () => a.isLeader(), 5_000);
      expect(a.epoch()).toBeGreaterThan(0);
      expect(a.leaderAddress()).toBe('http://a');
      expect(a.fence()).toEqual({ key: '/drover/unit/leader', epoch: a.epoch() });
      expect(changes).toEqual([true]);
      await a.stop();
      expect(a.isLeader()).toBe(false);
      expect(changes).toEqual([true, false]);
    });

    it('elects exactly one of two; the other follows and knows the address; a stop hands over at once', async () => {
      const a = elector('a');
      const b = elector('b');
      await neverTwoLeaders(async () => {
        await a.start();
        await b.start();
        await until('a leader', () => a.isLeader() || b.isLeader(), 5_000);
        const [leader, follower] = a.isLeader() ? [a, b] : [b, a];
        await until('follower knows the leader', () => follower.leaderAddress() === `http://${leader.id}`, 5_000);
        const firstEpoch = leader.epoch()!;
        // Stopping revokes the lease: the follower wins well before the TTL would have run out.
        const stopped = Date.now();
        await leader.stop();
        await until('the follower takes over', () => follower.isLeader(), 5_000);
        expect(Date.now() - stopped).toBeLessThan(1_500);
        expect(follower.epoch()!).toBeGreaterThan(firstEpoch);
      });
    });

    it('a killed leader (no revoke) is replaced once its lease expires, within TTL + 2 s', async () => {
      const a = elector('a');
      const b = elector('b');
      await a.start();
      await until('a leads', () => a.isLeader(), 5_000);
      await b.start();
      await until('b follows', () => b.leaderAddress() === 'http://a', 5_000);
      // Simulate a crash: the client vanishes without revoking; the lease runs out at etcd.
      const killedAt = Date.now();
      clients[0]!.close();
      await neverTwoLeaders(async () => {
        await until('b takes over', () => b.isLeader(), 10_000);
      });
      expect(Date.now() - killedAt).toBeLessThan(2_000 + 2_000);
    });

    it('a leader whose key is deleted under it (by hand) stops at once; a new term begins; never two', async () => {
      const a = elector('a');
      const b = elector('b');
      await a.start();
      await until('a leads', () => a.isLeader(), 5_000);
      await b.start();
      await until('b follows', () => b.leaderAddress() === 'http://a', 5_000);
      const first = a.epoch()!;
      const changes: boolean[] = [];
      a.onChange((l) => changes.push(l));
      await neverTwoLeaders(async () => {
        await clients[0]!.delete().key(a.leaderKey);
        await until('a new term', () => [a, b].some((e) => e.isLeader() && e.epoch()! > first), 5_000);
      });
      // a stepped down when its key went, whoever won the new term.
      expect(changes[0]).toBe(false);
    });

    it('ignores and reports a leader record that is not JSON or does not fit (no leader known, no redirect to it)', async () => {
      const raw = connectEtcd(cluster.endpoints);
      clients.push(raw);
      const a = elector('a');
      await raw.put(a.leaderKey).value('{"id": "x", "address":');
      await a.start();
      await until('the unreadable record is reported', () => logLines.some((l) => l.includes('invalid leader record ignored') && l.includes('not JSON')), 5_000);
      expect(a.isLeader()).toBe(false);
      expect(a.leaderAddress()).toBeNull();
      // Well-formed JSON, but an address no agent or client may be sent to.
      await raw.put(a.leaderKey).value(JSON.stringify({ id: 'x', address: 'javascript:alert(1)', since: new Date().toISOString() }));
      await until('the bad address is reported', () => logLines.some((l) => l.includes('invalid leader record ignored') && l.includes('address: must be an http(s) URL')), 5_000);
      expect(a.leaderAddress()).toBeNull();
      await raw.put(a.leaderKey).value(JSON.stringify({ id: 7, address: 'http://x', since: 'yesterday' }));
      await until('the wrong types are reported', () => logLines.some((l) => l.includes('invalid leader record ignored') && l.includes('id: ') && l.includes('since: must be an ISO 8601 time')), 5_000);
      expect(a.leaderAddress()).toBeNull();
      // A valid record is followed; once it goes, a takes over.
      await raw.put(a.leaderKey).value(JSON.stringify({ id: 'z', address: 'https://z.example:7400', since: new Date().toISOString() }));
      await until('a follows z', () => a.leaderAddress() === 'https://z.example:7400', 5_000);
      await raw.delete().key(a.leaderKey);
      await until('a leads', () => a.isLeader(), 5_000);
    });

    it('isLeader() turns false before the lease can expire when renewals stop reaching etcd', async () => {
      const a = elector('a', { ttlMs: 2_000 });
      await a.start();
      await until('a leads', () => a.isLeader(), 5_000);
      const changes: boolean[] = [];
      a.onChange((l) => changes.push(l));
      // Let one renewal succeed, then take etcd away entirely.
      await new Promise((r) => setTimeout(r, 700));
      const lastPossibleRenewal = Date.now();
      await cluster.killAll();
      const lostAfter = await until('a steps down', () => !a.isLeader(), 5_000);
      // The lease was renewed at most at `lastPossibleRenewal`; it cannot expire at etcd before + TTL.
      expect(Date.now() - lastPossibleRenewal).toBeLessThan(2_000);
      expect(lostAfter).toBeGreaterThan(0);
      await until('listeners told', () => changes.includes(false), 2_000);
    });

    it('a clock jump past the deadline (a paused process) ends leadership at once; a lease still alive resumes the same term', async () => {
      const clock = new JumpClock();
      const a = elector('a', { clock, ttlMs: 2_000 });
      await a.start();
      await until('a leads', () => a.isLeader(), 5_000);
      const epoch = a.epoch();
      clock.offset += 2_000; // as if the process had been stopped for a whole TTL
      expect(a.isLeader()).toBe(false);
      expect(a.epoch()).toBeNull();
      // etcd never expired the lease (real time did not pass): the next renewal resumes the term.
      await until('a leads again', () => a.isLeader(), 5_000);
      expect(a.epoch()).toBe(epoch);
    });

    it('keeps leadership (same epoch) when the etcd leader member is killed, and never two leaders', async () => {
      const a = elector('a', { ttlMs: 3_000 });
      const b = elector('b', { ttlMs: 3_000 });
      await a.start();
      await until('a leads', () => a.isLeader(), 5_000);
      await b.start();
      await until('b follows', () => b.leaderAddress() === 'http://a', 5_000);
      const epoch = a.epoch();
      const raftLeader = await cluster.leaderIndex();
      expect(raftLeader).not.toBeNull();
      await neverTwoLeaders(async () => {
        await cluster.kill(raftLeader!);
        // A new raft leader is elected; our lease survives it (etcd extends leases on a leader change).
        await new Promise((r) => setTimeout(r, 3_000));
        await until('a leads', () => a.isLeader(), 15_000);
      });
      expect(a.epoch()).toBe(epoch);
      expect(b.isLeader()).toBe(false);
    });

    it('never has two leaders across a restart of the whole etcd cluster, and elects one afterwards', async () => {
      const a = elector('a');
      const b = elector('b');
      const c = elector('c');
      for (const e of [a, b, c]) await e.start();
      await until('a leader', () => [a, b, c].some((e) => e.isLeader()), 5_000);
      const { samples } = await neverTwoLeaders(async () => {
        await cluster.killAll();
        await until('nobody leads', () => ![a, b, c].some((e) => e.isLeader()), 5_000);
        await new Promise((r) => setTimeout(r, 1_000));
        cluster.restartAll();
        await cluster.waitHealthy();
        await until('a leader again', () => [a, b, c].some((e) => e.isLeader()), 15_000);
        // Keep sampling a while: a stale leader must not come back alongside the new one.
        await new Promise((r) => setTimeout(r, 3_000));
      });
      expect(samples).toBeGreaterThan(100);
      expect([a, b, c].filter((e) => e.isLeader())).toHaveLength(1);
    });
  },
  { timeout: 60_000 },
);
