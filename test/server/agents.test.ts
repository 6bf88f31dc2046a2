import { afterEach, describe, expect, it, vi } from 'vitest';
import { ManualClock, type Clock, type TimerHandle } from '../../src/clock/index.js';
import { AGENT_PING_MISSES } from '../../src/config/index.js';
import { EventType, type ReconcileEvent } from '../../src/reconciler/index.js';
import { PING_SLOTS, SELF_REQUEST_BURST } from '../../src/server/agent-hub.js';
import { visibleEvent } from '../../src/server/events-route.js';
import { EventStreamReader } from '../helpers/event-stream.js';
import { FakeAgent, TestServer } from '../helpers/server-harness.js';

let t: TestServer | undefined;
const agents: FakeAgent[] = [];
afterEach(async () => {
  for (const a of agents.splice(0)) a.ws.terminate();
  await t?.close();
  t = undefined;
});

async function connect(server: TestServer, id: string, credential = server.credential(id)): Promise<FakeAgent> {
  const agent = await FakeAgent.connect(server.url, id, credential);
  agents.push(agent);
  return agent;
}

/**
 * A server on a ManualClock (health interval 1 s) and one agent, connected and welcomed, with the
 * pings and pongs it has received counted.
 */
async function oneAgentOnManualClock(options: { autoPong?: boolean; heartbeat?: boolean }): Promise<{ server: TestServer; clock: ManualClock; agent: FakeAgent; instanceId: string; received: { pings: number; pongs: number } }> {
  const clock = new ManualClock(new Date());
  const server = await new TestServer({ clock, shard: { healthCheckInterval: '1000ms' } }).start();
  t = server;
  await server.settle();
  const [instance] = server.server.db.listInstances();
  const agent = await FakeAgent.connect(server.url, instance!.id, server.credential(instance!.id), options);
  agents.push(agent);
  await agent.next((m) => m.type === 'welcome');
  const received = { pings: 0, pongs: 0 };
  agent.ws.on('ping', () => received.pings++);
  agent.ws.on('pong', () => received.pongs++);
  return { server, clock, agent, instanceId: instance!.id, received };
}

describe('agent connections', () => {
  it('welcomes an agent with its health interval and records its health reports', async () => {
    t = await new TestServer().start();
    await t.settle();
    const [inst] = t.server.db.listInstances();
    const agent = await connect(t, inst!.id);
    expect(await agent.next((m) => m.type === 'welcome')).toMatchObject({ type: 'welcome', instanceId: inst!.id, healthCheckIntervalMs: 1000 });
    expect(t.server.db.getInstance(inst!.id)?.healthAt).toBeNull();
    agent.health();
    await expect.poll(() => t!.server.db.getInstance(inst!.id)?.healthAt, { timeout: 5_000 }).not.toBeNull();
  });

  it('writes agents\' health reports through the group commit (the batch write), not one transaction each', async () => {
    t = await new TestServer({ groups: { default: { web: { size: 3, template: 'web' } } } }).start();
    await t.settle();
    const instances = t.server.db.listInstances();
    expect(instances).toHaveLength(3);
    const connected = await Promise.all(instances.map(async (i) => {
      const agent = await connect(t!, i.id);
      await agent.next((m) => m.type === 'welcome');
      return agent;
    }));
    const batches = vi.spyOn(t.server.db, 'recordHealthBatch');
    const single = vi.spyOn(t.server.db, 'recordHealth');
    for (const agent of connected) agent.health();
    await expect.poll(() => instances.every((i) => t!.server.db.getInstance(i.id)?.healthAt !== null), { timeout: 5_000 }).toBe(true);
    expect(single).not.toHaveBeenCalled();
    expect(batches.mock.calls.flatMap((c) => c[0].map((r) => r.instanceId)).sort()).toEqual(instances.map((i) => i.id).sort());
  });

  it('publishes an agent\'s rebalance recommendation on the event stream, and drops one whose time is no time', async () => {
    t = await new TestServer().start();
    await t.settle();
    const [inst] = t.server.db.listInstances();
    const stream = await EventStreamReader.open(`${t.url}/v1/events`);
    try {
      const agent = await connect(t, inst!.id);
      await agent.next((m) => m.type === 'welcome');
      agent.send({ type: 'rebalance', noticeTime: 'soon' });
      expect(await agent.next((m) => m.type === 'error')).toEqual({ type: 'error', message: 'unrecognised message' });
      agent.send({ type: 'rebalance', noticeTime: '2026-03-01T10:00:00Z' });
      const event = await stream.next((e) => e.type === 'rebalance');
      expect(event.data).toEqual({ instanceId: inst!.id, tenant: 'default', group: 'web', noticeTime: '2026-03-01T10:00:00.000Z', at: expect.any(String) });
      // Only published: the instance is neither drained nor replaced for it.
      await t.settle();
      expect(t.server.db.getInstance(inst!.id)?.status).toBe('running');
      expect(stream.events.filter((e) => e.type === 'rebalance')).toHaveLength(1);
    } finally {
      await stream.close();
    }
  });

  it('answers a rebalance recommendation with a replacement-first rotation when the group says onRebalance: replace', async () => {
    t = await new TestServer({ groups: { default: { web: { size: 1, template: 'web', onRebalance: 'replace' } } } }).start();
    await t.settle();
    const [inst] = t.server.db.listInstances();
    const agent = await connect(t, inst!.id);
    await agent.next((m) => m.type === 'welcome');
    agent.health();
    await expect.poll(() => t!.server.db.getInstance(inst!.id)?.healthAt, { timeout: 5_000 }).not.toBeNull();
    agent.send({ type: 'rebalance', noticeTime: '2026-03-01T10:00:00Z' });
    await expect.poll(() => t!.server.db.listInstances().find((i) => i.replaces === inst!.id)?.createReason, { timeout: 5_000 }).toBe('operator');
    const requested = t.server.db.listAudit({ instanceId: inst!.id }).find((a) => a.action === 'drainRequested');
    expect(requested?.actor).toBe('cloud');
    expect(requested?.detail).toMatch(/^rebalance recommendation at 2026-03-01T10:00:00.000Z: drain requested; replacement first, when the budget allows$/);
    // The old instance keeps serving until its replacement does (replacement first).
    expect(t.server.db.getInstance(inst!.id)?.status).toBe('running');
  });

  it('shows a rebalance recommendation only to tokens that see its tenant', () => {
    const event = { type: 'rebalance' as const, data: { instanceId: 'i-1', tenant: 'a', group: 'web', noticeTime: '2026-03-01T10:00:00.000Z', at: '2026-03-01T10:00:01.000Z' } };
    const scoped = (tenants: string[]) => ({ name: 'x', role: 'viewer' as const, tenants: new Set(tenants), legacy: false });
    expect(visibleEvent(event, scoped(['a']))).toBe(event);
    expect(visibleEvent(event, scoped(['b']))).toBeNull();
  });

  it('refuses an unknown credential, and a credential of another instance', async () => {
    t = await new TestServer().start();
    await t.settle();
    const [a, b] = t.server.db.listInstances();
    await expect(FakeAgent.connect(t.url, a!.id, 'forged')).rejects.toThrow(/401/);
    await expect(FakeAgent.connect(t.url, a!.id, t.credential(b!.id))).rejects.toThrow(/401/);
  });

  it('refuses the credential of a deleted instance', async () => {
    t = await new TestServer().start();
    await t.settle();
    await t.api('PUT', '/v1/groups/default/web/size', { size: 1 });
    await t.settle();
    const [draining] = t.server.db.listInstances().filter((i) => i.status === 'draining');
    await t.api('POST', `/v1/instances/${draining!.id}/drain-ack`);
    await expect.poll(() => t!.server.db.getInstance(draining!.id)?.status, { timeout: 5_000 }).toBe('deleted');
    await expect(FakeAgent.connect(t.url, draining!.id, t.credential(draining!.id))).rejects.toThrow(/403/);
  });

  it('checks an instance whose agent drops without a goodbye, but not one that says goodbye', async () => {
    t = await new TestServer().start();
    await t.settle();
    const [a, b] = t.server.db.listInstances();
    const statusCalls: string[] = [];
    t.provider.onCallStart((c) => {
      if (c.op === 'status' && c.providerId) statusCalls.push(c.providerId);
    });
    const polite = await connect(t, a!.id);
    await polite.next((m) => m.type === 'welcome');
    await polite.goodbye();
    const rude = await connect(t, b!.id);
    await rude.next((m) => m.type === 'welcome');
    await rude.drop();
    await expect.poll(() => statusCalls.includes(b!.providerId!), { timeout: 5_000 }).toBe(true);
    await t.settle();
    expect(statusCalls).not.toContain(a!.providerId);
  });

  it('replaces an instance whose agent disconnects and whose process is gone', async () => {
    t = await new TestServer().start();
    await t.settle();
    const [victim] = t.server.db.listInstances();
    const agent = await connect(t, victim!.id);
    await agent.next((m) => m.type === 'welcome');
    t.provider.vanish(victim!.id);
    await agent.drop();
    await expect.poll(() => t!.server.db.getInstance(victim!.id)?.status, { timeout: 5_000 }).toBe('deleted');
    await t.settle();
    expect(t.server.db.listInstances()).toHaveLength(2);
  });

  it('delivers a drain notice to a connected agent, again on reconnect, and deletes on its ack', async () => {
    t = await new TestServer().start();
    await t.settle();
    for (const i of t.server.db.listInstances()) t.server.db.recordHealth(i.id, new Date());
    const all = t.server.db.listInstances();
    const connected = await Promise.all(all.map((i) => connect(t!, i.id)));
    await t.api('PUT', '/v1/groups/default/web/size', { size: 1 });
    await t.settle();
    const [draining] = t.server.db.listInstances().filter((i) => i.status === 'draining');
    const agent = connected.find((a) => a.instanceId === draining!.id)!;
    const notice = await agent.next((m) => m.type === 'drain');
    expect(notice).toMatchObject({ type: 'drain', reason: 'scaleDown', deadline: draining!.drainDeadline!.toISOString() });
    // Reconnecting while draining: the notice comes again.
    const again = await connect(t, draining!.id);
    expect(await again.next((m) => m.type === 'drain')).toMatchObject({ reason: 'scaleDown' });
    again.send({ type: 'drainAck' });
    await expect.poll(() => t!.server.db.getInstance(draining!.id)?.status, { timeout: 5_000 }).toBe('deleted');
    expect(t.server.db.listAudit({ instanceId: draining!.id }).find((a) => a.action === 'drainAcked')?.actor).toBe('agent');
  });

  it('turns a termination notice from an agent into a replacement and a drain', async () => {
    t = await new TestServer({ groups: { default: { web: { size: 2, template: 'web', drainTimeout: '10m' } } } }).start();
    await t.settle();
    const [doomed] = t.server.db.listInstances();
    const agent = await connect(t, doomed!.id);
    await agent.next((m) => m.type === 'welcome');
    const terminateAt = new Date(Date.now() + 120_000);
    agent.send({ type: 'notice', terminateAt: terminateAt.toISOString() });
    await expect.poll(() => t!.server.db.getInstance(doomed!.id)?.status, { timeout: 5_000 }).toBe('draining');
    expect(t.server.db.getInstance(doomed!.id)?.drainDeadline?.getTime()).toBe(terminateAt.getTime());
    expect(t.server.db.listInstances().some((i) => i.replaces === doomed!.id)).toBe(true);
  });

  it('answers a malformed message with an error and keeps the connection', async () => {
    t = await new TestServer().start();
    await t.settle();
    const [inst] = t.server.db.listInstances();
    const agent = await connect(t, inst!.id);
    agent.ws.send('{"type":"health","at":"not a time"}');
    expect(await agent.next((m) => m.type === 'error')).toMatchObject({ message: 'unrecognised message' });
    agent.health();
    await expect.poll(() => t!.server.db.getInstance(inst!.id)?.healthAt, { timeout: 5_000 }).not.toBeNull();
  });

  it('replaces an older connection of the same instance by a newer one', async () => {
    t = await new TestServer().start();
    await t.settle();
    const [inst] = t.server.db.listInstances();
    const first = await connect(t, inst!.id);
    await first.next((m) => m.type === 'welcome');
    const second = await connect(t, inst!.id);
    await second.next((m) => m.type === 'welcome');
    expect((await first.closed).code).toBe(4000);
    second.health();
    await expect.poll(() => t!.server.db.getInstance(inst!.id)?.healthAt, { timeout: 5_000 }).not.toBeNull();
  });

  it('rate-limits an instance\'s own requests: past the burst they are refused without reaching the reconciler', async () => {
    t = await new TestServer().start();
    await t.settle();
    const [inst] = t.server.db.listInstances();
    const agent = await connect(t, inst!.id);
    await agent.next((m) => m.type === 'welcome');
    const results: Array<{ ok: boolean; message?: string }> = [];
    for (let k = 0; k < SELF_REQUEST_BURST + 3; k++) {
      agent.send({ type: 'protect', requestId: `r-${k}`, forMs: 60_000 });
      results.push((await agent.next((m) => m.type === 'result' && m.requestId === `r-${k}`)) as { ok: boolean; message?: string });
    }
    expect(results.slice(0, SELF_REQUEST_BURST).every((r) => r.ok)).toBe(true);
    for (const refused of results.slice(SELF_REQUEST_BURST)) {
      expect(refused.ok).toBe(false);
      expect(refused.message).toMatch(/too many requests from this instance/);
    }
    expect(t.server.db.listAudit({ instanceId: inst!.id }).filter((a) => a.action === 'protect')).toHaveLength(SELF_REQUEST_BURST);
  });
});

describe('liveness (one sweep timer for every connection)', () => {
  it('terminates a connection not heard from (no message, no pong) after AGENT_PING_MISSES intervals and within one more, checking its instance; keeps one that reports, pinging it every other interval', async () => {
    const INTERVAL_MS = 1_000;
    const clock = new ManualClock(new Date());
    t = await new TestServer({ clock, shard: { healthCheckInterval: `${INTERVAL_MS}ms` } }).start();
    await t.settle();
    const [a, b] = t.server.db.listInstances();
    const reporting = await connect(t, a!.id);
    const silent = await FakeAgent.connect(t.url, b!.id, t.credential(b!.id), { autoPong: false });
    agents.push(silent);
    await reporting.next((m) => m.type === 'welcome');
    await silent.next((m) => m.type === 'welcome');
    let pings = 0;
    reporting.ws.on('ping', () => pings++);
    let silentPings = 0;
    silent.ws.on('ping', () => silentPings++);
    const checks: string[] = [];
    const enqueue = t.server.reconciler.enqueue.bind(t.server.reconciler);
    vi.spyOn(t.server.reconciler, 'enqueue').mockImplementation((event: ReconcileEvent) => {
      if (event.type === EventType.CheckInstance && event.cause === 'disconnect' && event.instanceId) checks.push(event.instanceId);
      enqueue(event);
    });
    /**
     * One health interval, step by step as the sweep runs; then the reporting agent sends a
     * message (as its reports would) and waits for the answer, so the hub has read everything it
     * sent (its pongs too) before the next visit.
     */
    const oneInterval = async (k: number): Promise<void> => {
      for (let s = 0; s < PING_SLOTS; s++) await clock.advance(INTERVAL_MS / PING_SLOTS);
      reporting.send({ type: 'no such message' });
      await expect.poll(() => reporting.messages.filter((m) => m.type === 'error').length, { timeout: 5_000 }).toBe(k);
    };
    for (let k = 1; k <= AGENT_PING_MISSES; k++) await oneInterval(k);
    // Not heard from: pinged at every visit, not yet given up.
    expect(silentPings).toBe(AGENT_PING_MISSES);
    expect(silent.ws.readyState).toBe(silent.ws.OPEN);
    expect(checks).toEqual([]);
    await oneInterval(AGENT_PING_MISSES + 1);
    await expect.poll(() => checks[0], { timeout: 5_000 }).toBe(b!.id);
    expect((await silent.closed).code).toBe(1006);
    // The reporting one stays; heard from at every visit, it is pinged at every other one (1st, 3rd, 5th).
    for (let k = AGENT_PING_MISSES + 2; k <= 5; k++) await oneInterval(k);
    await expect.poll(() => pings, { timeout: 5_000 }).toBe(3);
    expect(reporting.ws.readyState).toBe(reporting.ws.OPEN);
    // (The reconciler re-polls the silent one's instance with the same cause; the reporting one is never checked.)
    expect(checks).not.toContain(a!.id);
  });

  it('keeps a connection that only answers pings (an unhealthy instance sends no reports), pinging it at every visit', async () => {
    const INTERVAL_MS = 1_000;
    const clock = new ManualClock(new Date());
    t = await new TestServer({ clock, shard: { healthCheckInterval: `${INTERVAL_MS}ms` } }).start();
    await t.settle();
    const [a] = t.server.db.listInstances();
    const quiet = await connect(t, a!.id);
    await quiet.next((m) => m.type === 'welcome');
    let pings = 0;
    quiet.ws.on('ping', () => pings++);
    let serverPongs = 0;
    quiet.ws.on('pong', () => serverPongs++);
    const enqueue = vi.spyOn(t.server.reconciler, 'enqueue');
    const VISITS = 4 * (AGENT_PING_MISSES + 1);
    for (let k = 1; k <= VISITS; k++) {
      for (let s = 0; s < PING_SLOTS; s++) await clock.advance(INTERVAL_MS / PING_SLOTS);
      // Heard from only by its pongs, so pinged at every visit (one that reports is pinged at every
      // other one): heard from every interval, an interval clear of the limit. Once this visit's
      // ping has come (and been answered), a ping of ours, answered by the hub's WebSocket itself
      // (not a hearing for the hub), proves the hub has read that pong before the next visit.
      await expect.poll(() => pings, { timeout: 5_000 }).toBe(k);
      const pongs = serverPongs;
      quiet.ws.ping();
      await expect.poll(() => serverPongs, { timeout: 5_000 }).toBe(pongs + 1);
    }
    expect(pings).toBe(VISITS);
    expect(quiet.ws.readyState).toBe(quiet.ws.OPEN);
    expect(enqueue.mock.calls.filter(([e]) => e.type === EventType.CheckInstance && e.cause === 'disconnect')).toEqual([]);
  });

  it('keeps a connection that answers pings up to half an interval late, unevenly (a busy agent that sends no reports)', async () => {
    const INTERVAL_MS = 1_000;
    const STEP_MS = INTERVAL_MS / PING_SLOTS;
    // Late by 2 steps, then by half an interval, and so on.
    const lateSteps = (k: number): number => (k % 2 === 1 ? 2 : PING_SLOTS / 2);
    const { server, clock, agent: busy, received } = await oneAgentOnManualClock({ autoPong: false });
    /** One sweep step; then a ping of ours, answered by the hub's WebSocket after anything it sent before. */
    const step = async (): Promise<void> => {
      await clock.advance(STEP_MS);
      const before = received.pongs;
      busy.ws.ping();
      await expect.poll(() => received.pongs, { timeout: 5_000, interval: 1 }).toBe(before + 1);
    };
    const enqueue = vi.spyOn(server.server.reconciler, 'enqueue');
    const VISITS = 8;
    for (let k = 1; k <= VISITS; k++) {
      while (received.pings < k) await step();
      for (let s = 0; s < lateSteps(k); s++) await step();
      busy.ws.pong();
    }
    // Pinged at every visit, each answered late: heard from every interval, never dropped.
    expect(received.pings).toBe(VISITS);
    expect(busy.ws.readyState).toBe(busy.ws.OPEN);
    expect(enqueue.mock.calls.filter(([e]) => e.type === EventType.CheckInstance && e.cause === 'disconnect')).toEqual([]);
  });

  it('keeps a reporting agent that takes pong heartbeats alive with pongs it need not answer, and pings it once it goes quiet', async () => {
    const INTERVAL_MS = 1_000;
    // It never answers a ping: any ping the hub sent would go unanswered, and show. Its pongs
    // received are the hub's heartbeats.
    const { server, clock, agent, instanceId, received } = await oneAgentOnManualClock({ heartbeat: true, autoPong: false });
    const checks = vi.spyOn(server.server.reconciler, 'enqueue');
    const VISITS = 6;
    for (let k = 1; k <= VISITS; k++) {
      // A message the hub answers: once answered, the hub has heard it before the next visit.
      agent.send({ type: 'no such message' });
      await expect.poll(() => agent.messages.filter((m) => m.type === 'error').length, { timeout: 5_000 }).toBe(k);
      for (let s = 0; s < PING_SLOTS; s++) await clock.advance(INTERVAL_MS / PING_SLOTS);
      // Heard from at every visit: a heartbeat at every other one (1st, 3rd, 5th), never a ping.
      await expect.poll(() => received.pongs, { timeout: 5_000 }).toBe(Math.ceil(k / 2));
    }
    expect(received.pings).toBe(0);
    // Quiet now: pinged at every visit, and let go once AGENT_PING_MISSES intervals pass unanswered.
    for (let k = 1; k <= AGENT_PING_MISSES + 1; k++) {
      for (let s = 0; s < PING_SLOTS; s++) await clock.advance(INTERVAL_MS / PING_SLOTS);
    }
    expect((await agent.closed).code).toBe(1006);
    expect(received.pings).toBeGreaterThanOrEqual(AGENT_PING_MISSES);
    expect(received.pongs).toBe(VISITS / 2);
    await expect.poll(() => checks.mock.calls.some(([e]) => e.type === EventType.CheckInstance && e.cause === 'disconnect' && e.instanceId === instanceId), { timeout: 5_000 }).toBe(true);
  });

  it('visits every connection once when its sweep step fires an interval late (a busy event loop), not one slot per wake-up', async () => {
    const INTERVAL_MS = 1_000;
    const manual = new ManualClock(new Date());
    // The server's clock reads `lag` ms ahead of when its timers fire: each timer fires late.
    let lag = 0;
    const clock: Clock = {
      now: () => new Date(manual.nowMs() + lag),
      nowMs: () => manual.nowMs() + lag,
      schedule: (atMs: number, fn: () => void): TimerHandle => manual.schedule(atMs - lag, fn),
      sleep: (ms: number) => manual.sleep(ms),
    };
    t = await new TestServer({ clock, groups: { default: { web: { size: 3, template: 'web' } } }, shard: { healthCheckInterval: `${INTERVAL_MS}ms` } }).start();
    await t.settle();
    const silent = await Promise.all(
      t.server.db.listInstances().map(async (i) => {
        const agent = await FakeAgent.connect(t!.url, i.id, t!.credential(i.id), { autoPong: false });
        agents.push(agent);
        await agent.next((m) => m.type === 'welcome');
        return agent;
      }),
    );
    const pings = silent.map(() => 0);
    silent.forEach((agent, i) => agent.ws.on('ping', () => pings[i]!++));
    // The three sit in three consecutive slots; the first step is due one slot from the first accept.
    // It fires a whole interval late: every slot has fallen due, and each is visited once.
    lag = INTERVAL_MS;
    await manual.advance(INTERVAL_MS / PING_SLOTS);
    await expect.poll(() => pings, { timeout: 5_000 }).toEqual([1, 1, 1]);
    // Then one slot per step again, from the late step on: an interval later each was visited
    // once more (not heard from: pinged again), not more.
    for (let s = 0; s < PING_SLOTS + 2; s++) await manual.advance(INTERVAL_MS / PING_SLOTS);
    await expect.poll(() => pings, { timeout: 5_000 }).toEqual([2, 2, 2]);
  });
});
