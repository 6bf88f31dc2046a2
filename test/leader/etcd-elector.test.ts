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

/** The electors' default lease TTL here. */
const TTL_MS = 2_000;

/** How often an EtcdElector renews its lease (and a follower campaigns): every TTL / 3. */
function renewalIntervalMs(ttlMs: number): number {
  return Math.round(ttlMs / 3);
}

function elector(name: string, options: { ttlMs?: number; clock?: Clock } = {}): EtcdElector {
  const client = connectEtcd(cluster.endpoints);
  clients.push(client);
  const line = (level: string) => (obj: object, msg?: string): void => {
    logLines.push(`${new Date().toISOString()} ${name} ${level} ${msg ?? ''} ${JSON.stringify(obj)}`);
  };
  const logger = { debug: () => undefined, info: line('info'), warn: line('warn'), error: line('error') };
  const e = new EtcdElector({ client, shardId: 'unit', ttlMs: options.ttlMs ?? TTL_MS, address: () => `http://${name}`, clock: options.clock ?? new SystemClock(), id: name, logger });
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

/**
 * Samples every elector every few ms while `during` runs; fails if two ever lead at once.
 * `phases` is who led, in order, each change once ('' for nobody): it shows the sampler saw
 * every stage, however few samples a loaded machine allowed.
 */
async function neverTwoLeaders<T>(during: () => Promise<T>): Promise<{ result: T; phases: string[] }> {
  const phases: string[] = [];
  let overlap: string | null = null;
  let done = false;
  const sample = (): void => {
    const leading = electors.filter((e) => e.isLeader()).map((e) => e.id);
    if (leading.length > 1 && overlap === null) overlap = leading.join(', ');
    const phase = leading.join(', ');
    if (phases[phases.length - 1] !== phase) phases.push(phase);
  };
  const sampler = (async () => {
    while (!done) {
      sample();
      await new Promise((r) => setTimeout(r, 5));
    }
  })();
  try {
    const result = await during();
    return { result, phases };
  } finally {
    done = true;
    await sampler;
    sample();
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

    it('elects exactly one of two; the other follows and knows the address; a stop hands over before the lease could run out', async () => {
      // A long TTL, so that a takeover by revocation and one by the lease running out are far apart.
      const ttlMs = 10_000;
      const a = elector('a', { ttlMs });
      const b = elector('b', { ttlMs });
      await neverTwoLeaders(async () => {
        await a.start();
        await b.start();
        await until('a leader', () => a.isLeader() || b.isLeader(), 5_000);
        const [leader, follower] = a.isLeader() ? [a, b] : [b, a];
        await until('follower knows the leader', () => follower.leaderAddress() === `http://${leader.id}`, 5_000);
        const firstEpoch = leader.epoch()!;
        // Stopping revokes the lease: the follower wins at once. Without the revocation it could
        // win only once the lease ran out at etcd, no sooner than a TTL after the last renewal,
        // which was at most one renewal interval before the stop.
        const leaseRunsOutAfterMs = ttlMs - renewalIntervalMs(ttlMs);
        await leader.stop();
        const tookMs = await until('the follower takes over before the lease could run out', () => follower.isLeader(), leaseRunsOutAfterMs);
        console.log(`[elector] hand-over on stop: ${tookMs} ms (the lease could not have run out before ${leaseRunsOutAfterMs} ms)`);
        expect(follower.epoch()!).toBeGreaterThan(firstEpoch);
      });
    });

    it('a killed leader (no revoke) is replaced once its lease expires, within TTL + 2 renewal intervals', async () => {
      // Longer than the default: the allowance (two intervals) grows with the TTL, what etcd
      // adds (its sweep of expired leases every 500 ms, a raft commit) does not.
      const ttlMs = 4_000;
      const a = elector('a', { ttlMs });
      const b = elector('b', { ttlMs });
      await a.start();
      await until('a leads', () => a.isLeader(), 5_000);
      await b.start();
      await until('b follows', () => b.leaderAddress() === 'http://a', 5_000);
      // Simulate a crash: the client vanishes without revoking; the lease runs out at etcd.
      // It was last renewed before the kill, so it runs out within a TTL of it; b campaigns when
      // its watch sees the key go, or at its next renewal at the latest (one interval); one more
      // interval allows for etcd's own periodic sweep of expired leases.
      const bound = ttlMs + 2 * renewalIntervalMs(ttlMs);
      clients[0]!.close();
      const { result: tookMs } = await neverTwoLeaders(() => until('b takes over', () => b.isLeader(), bound));
      console.log(`[elector] takeover after a killed leader: ${tookMs} ms (bound ${bound} ms)`);
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
      const a = elector('a');
      // When each keepalive is sent: etcd cannot expire the lease before a TTL after the last
      // one it received, so isLeader() must be false from (last sent + TTL) on.
      const client = clients[clients.length - 1]!;
      const keepAliveSent: number[] = [];
      const keepAlive = client.leaseClient.leaseKeepAlive.bind(client.leaseClient);
      client.leaseClient.leaseKeepAlive = (...args) => {
        keepAliveSent.push(Date.now());
        return keepAlive(...args);
      };
      await a.start();
      await until('a leads', () => a.isLeader(), 5_000);
      const changes: boolean[] = [];
      a.onChange((l) => changes.push(l));
      // One renewal completes (the loop sends the next only after the previous answer), then
      // etcd goes away entirely: no keepalive sent after this can reach it.
      await until('a renewal completed', () => keepAliveSent.length >= 2, 5_000);
      await cluster.killAll();
      const lastSent = keepAliveSent[keepAliveSent.length - 1]!;
      // isLeader() reads the clock, so looking late (a loaded machine) cannot hide a deadline
      // past the lease's; waiting for that instant is what the test is about.
      const wait = lastSent + TTL_MS - Date.now();
      if (wait > 0) await new Promise((r) => setTimeout(r, wait));
      expect(a.isLeader()).toBe(false);
      expect(a.epoch()).toBeNull();
      await until('listeners told', () => changes.includes(false), TTL_MS);
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
      const ttlMs = 3_000;
      const a = elector('a', { ttlMs });
      const b = elector('b', { ttlMs });
      await a.start();
      await until('a leads', () => a.isLeader(), 5_000);
      await b.start();
      await until('b follows', () => b.leaderAddress() === 'http://a', 5_000);
      const epoch = a.epoch();
      const raftLeader = await cluster.leaderIndex();
      expect(raftLeader).not.toBeNull();
      await neverTwoLeaders(async () => {
        await cluster.kill(raftLeader!);
        // A new raft leader is elected; our lease survives it (etcd extends leases on a leader
        // change). Watched for a whole TTL: a lease lost with the member would be gone by then.
        await new Promise((r) => setTimeout(r, ttlMs));
        await until('a leads', () => a.isLeader(), 15_000);
      });
      expect(a.epoch()).toBe(epoch);
      expect(b.isLeader()).toBe(false);
    });

    it('with one member down, every renewal reaches a live member: the leader never lapses', async () => {
      const raftLeader = await cluster.leaderIndex();
      const down = raftLeader === 0 ? 1 : 0;
      await cluster.kill(down);
      // The shortest TTL: two renewals in a row that miss end leadership, so a renewal that gave
      // up on the member it happened to pick (one in three) would show within these 24 rounds.
      const ttlMs = 1_000;
      const a = elector('a', { ttlMs });
      const changes: boolean[] = [];
      a.onChange((leader) => changes.push(leader));
      await a.start();
      await until('a leads', () => a.isLeader(), 5_000);
      await new Promise((r) => setTimeout(r, 24 * renewalIntervalMs(ttlMs)));
      expect(a.isLeader()).toBe(true);
      expect(changes, `leadership changes; electors said:\n${logLines.join('\n')}`).toEqual([true]);
      expect(logLines.filter((l) => l.includes('expired'))).toEqual([]);
    });

    it('never has two leaders across a restart of the whole etcd cluster, and elects one afterwards', async () => {
      const a = elector('a');
      const b = elector('b');
      const c = elector('c');
      for (const e of [a, b, c]) await e.start();
      await until('a leader', () => [a, b, c].some((e) => e.isLeader()), 5_000);
      const { phases } = await neverTwoLeaders(async () => {
        await cluster.killAll();
        await until('nobody leads', () => ![a, b, c].some((e) => e.isLeader()), 5_000);
        await new Promise((r) => setTimeout(r, 1_000));
        cluster.restartAll();
        await cluster.waitHealthy();
        await until('a leader again', () => [a, b, c].some((e) => e.isLeader()), 15_000);
        // Keep sampling a while: a stale leader must not come back alongside the new one.
        await new Promise((r) => setTimeout(r, 3_000));
      });
      // The sampler saw one leader, then nobody, then one leader (and never two).
      expect(phases.length).toBeGreaterThanOrEqual(3);
      expect(phases[0]).not.toBe('');
      expect(phases).toContain('');
      expect(phases[phases.length - 1]).not.toBe('');
      expect([a, b, c].filter((e) => e.isLeader())).toHaveLength(1);
    });
  },
  { timeout: 60_000 },
);
