/**
 * The agent among HA replicas: a 503 from a replica that does not lead sends it straight to the
 * leader that replica names (if configured), without a long backoff. The agent runs on a
 * ManualClock over real sockets: its retries wait for the test to move the clock.
 */
import { createServer, type IncomingMessage, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { WebSocketServer } from 'ws';
import { runAgent, type Agent } from '../../src/agent/agent.js';
import { ManualClock } from '../../src/clock/index.js';
import type { Logger } from '../../src/logging/index.js';

const quiet: Logger = { debug: () => undefined, info: () => undefined, warn: () => undefined, error: () => undefined };

interface Replica {
  url: string;
  /** Upgrades this replica received. */
  upgrades: number;
  close(): Promise<void>;
}

/** A replica that refuses agents with 503 (naming `leader()`), or accepts them with a welcome. */
async function replica(mode: { refuseNaming?: () => string | null }): Promise<Replica> {
  const wss = new WebSocketServer({ noServer: true });
  const http: Server = createServer((_req, res) => res.writeHead(404).end());
  const r: Replica = {
    url: '',
    upgrades: 0,
    close: async () => {
      for (const c of wss.clients) c.terminate();
      await new Promise<void>((resolve) => http.close(() => resolve()));
    },
  };
  http.on('upgrade', (req: IncomingMessage, socket, head) => {
    r.upgrades++;
    if (mode.refuseNaming) {
      const leader = mode.refuseNaming();
      socket.end(`HTTP/1.1 503 Service Unavailable\r\n${leader ? `X-Drover-Leader: ${leader}\r\n` : ''}Connection: close\r\nContent-Length: 0\r\n\r\n`);
      return;
    }
    wss.handleUpgrade(req, socket, head, (ws) => ws.send(JSON.stringify({ type: 'welcome', instanceId: 'i-ha', healthCheckIntervalMs: 1_000, serverTime: new Date().toISOString() })));
  });
  await new Promise<void>((resolve) => http.listen(0, '127.0.0.1', resolve));
  r.url = `http://127.0.0.1:${(http.address() as AddressInfo).port}`;
  return r;
}

/**
 * The agent's contract after a 503: the next attempt within at most a second (HA in the agent's
 * header). The tests hold it to that on a ManualClock: the retry's delay is read from the timer
 * the agent schedules, not from wall time, so a loaded machine cannot make it look late.
 */
const RETRY_AFTER_503_MAX_MS = 1_000;

/** Waits (on real I/O) until the agent has scheduled its retry after attempt `attempts`; returns the retry's delay. */
async function retryScheduled(clock: ManualClock, replicas: Replica[], attempts: number): Promise<number> {
  await expect.poll(() => replicas.reduce((n, r) => n + r.upgrades, 0), { timeout: 5_000, interval: 5 }).toBe(attempts);
  // The refusal is read, the connection closes, and the retry is put on the clock.
  await expect.poll(() => clock.pendingTimers(), { timeout: 5_000, interval: 5 }).toBe(1);
  return clock.nextTimerAt()! - clock.nowMs();
}

const open: Array<{ close(): Promise<void> }> = [];
let agent: Agent | undefined;
afterEach(async () => {
  await agent?.stop();
  agent = undefined;
  for (const r of open.splice(0)) await r.close();
});

describe('agent with several server addresses', () => {
  it('goes from a follower straight to the leader it names, skipping other replicas, within a second', async () => {
    const leader = await replica({});
    const other = await replica({ refuseNaming: () => leader.url });
    const follower = await replica({ refuseNaming: () => leader.url });
    open.push(leader, other, follower);
    const clock = new ManualClock();
    // A first backoff of 10 s (with the largest jitter): were a 503 treated as an ordinary
    // failure, the retry would wait that long, far past the 1 s the contract allows.
    agent = runAgent(
      { instanceId: 'i-ha', servers: [follower.url, other.url, leader.url], credential: 'c', healthCheckIntervalMs: 1_000 },
      { logger: quiet, keepAlive: false, clock, random: () => 1, reconnectInitialMs: 10_000, reconnectMaxMs: 60_000 },
    );
    const delay = await retryScheduled(clock, [leader, other, follower], 1);
    expect(follower.upgrades).toBe(1);
    expect(delay).toBeLessThanOrEqual(RETRY_AFTER_503_MAX_MS);
    await clock.advance(delay);
    await expect.poll(() => leader.upgrades, { timeout: 5_000, interval: 5 }).toBe(1);
    expect(other.upgrades).toBe(0);
  });

  it('keeps retrying within a second while no replica knows a leader (an election)', async () => {
    let elected: string | null = null;
    const a = await replica({ refuseNaming: () => elected });
    const b = await replica({ refuseNaming: () => elected });
    open.push(a, b);
    const clock = new ManualClock();
    // Backoff 250 ms doubling to 10 s, largest jitter: without the 1 s cap on a 503, the 4th
    // retry would wait 2 s and the 6th 8 s.
    agent = runAgent(
      { instanceId: 'i-ha', servers: [a.url, b.url], credential: 'c', healthCheckIntervalMs: 1_000 },
      { logger: quiet, keepAlive: false, clock, random: () => 1, reconnectInitialMs: 250, reconnectMaxMs: 10_000 },
    );
    const delays: number[] = [];
    for (let attempt = 1; attempt <= 6; attempt++) {
      if (attempt > 1) await clock.advance(delays[delays.length - 1]!);
      delays.push(await retryScheduled(clock, [a, b], attempt));
    }
    // The backoff still grows, up to the cap, and stays there; the attempts alternate.
    expect(delays).toEqual([250, 500, RETRY_AFTER_503_MAX_MS, RETRY_AFTER_503_MAX_MS, RETRY_AFTER_503_MAX_MS, RETRY_AFTER_503_MAX_MS]);
    expect([a.upgrades, b.upgrades]).toEqual([3, 3]);
    // A leader named that is not a configured server: the agent keeps rotating among its own.
    const leader = await replica({});
    open.push(leader);
    elected = leader.url;
    await clock.advance(delays[delays.length - 1]!);
    for (let attempt = 7; attempt <= 9; attempt++) {
      const delay = await retryScheduled(clock, [a, b, leader], attempt);
      expect(delay).toBeLessThanOrEqual(RETRY_AFTER_503_MAX_MS);
      await clock.advance(delay);
    }
    await expect.poll(() => a.upgrades + b.upgrades, { timeout: 5_000, interval: 5 }).toBe(10);
    expect(leader.upgrades).toBe(0);
  });
});
