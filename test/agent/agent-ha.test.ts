/**
 * The agent among HA replicas: a 503 from a replica that does not lead sends it straight to the
 * leader that replica names (if configured), without a long backoff.
 */
import { createServer, type IncomingMessage, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { WebSocketServer } from 'ws';
import { runAgent, type Agent } from '../../src/agent/agent.js';
import type { Logger } from '../../src/reconciler/index.js';

const quiet: Logger = { debug: () => undefined, info: () => undefined, warn: () => undefined, error: () => undefined };

interface Replica {
  url: string;
  upgrades: number[];
  close(): Promise<void>;
}

/** A replica that refuses agents with 503 (naming `leader()`), or accepts them with a welcome. */
async function replica(mode: { refuseNaming?: () => string | null }): Promise<Replica> {
  const upgrades: number[] = [];
  const wss = new WebSocketServer({ noServer: true });
  const http: Server = createServer((_req, res) => res.writeHead(404).end());
  http.on('upgrade', (req: IncomingMessage, socket, head) => {
    upgrades.push(Date.now());
    if (mode.refuseNaming) {
      const leader = mode.refuseNaming();
      socket.end(`HTTP/1.1 503 Service Unavailable\r\n${leader ? `X-Drover-Leader: ${leader}\r\n` : ''}Connection: close\r\nContent-Length: 0\r\n\r\n`);
      return;
    }
    wss.handleUpgrade(req, socket, head, (ws) => ws.send(JSON.stringify({ type: 'welcome', instanceId: 'i-ha', healthCheckIntervalMs: 1_000, serverTime: new Date().toISOString() })));
  });
  await new Promise<void>((resolve) => http.listen(0, '127.0.0.1', resolve));
  const url = `http://127.0.0.1:${(http.address() as AddressInfo).port}`;
  return {
    url,
    upgrades,
    close: async () => {
      for (const c of wss.clients) c.terminate();
      await new Promise<void>((resolve) => http.close(() => resolve()));
    },
  };
}

const open: Array<{ close(): Promise<void> }> = [];
let agent: Agent | undefined;
afterEach(async () => {
  await agent?.stop();
  agent = undefined;
  for (const r of open.splice(0)) await r.close();
});

describe('agent with several server addresses', () => {
  it('goes from a follower straight to the leader it names, skipping other replicas', async () => {
    const leader = await replica({});
    const other = await replica({ refuseNaming: () => leader.url });
    const follower = await replica({ refuseNaming: () => leader.url });
    open.push(leader, other, follower);
    const started = Date.now();
    agent = runAgent({ instanceId: 'i-ha', servers: [follower.url, other.url, leader.url], credential: 'c', healthCheckIntervalMs: 1_000 }, { logger: quiet, keepAlive: false });
    await expect.poll(() => leader.upgrades.length, { timeout: 5_000, interval: 20 }).toBe(1);
    expect(follower.upgrades).toHaveLength(1);
    expect(other.upgrades).toHaveLength(0);
    expect(Date.now() - started).toBeLessThan(1_500);
  });

  it('keeps retrying within a second while no replica knows a leader (an election)', async () => {
    let elected: string | null = null;
    const a = await replica({ refuseNaming: () => elected });
    const b = await replica({ refuseNaming: () => elected });
    open.push(a, b);
    agent = runAgent({ instanceId: 'i-ha', servers: [a.url, b.url], credential: 'c', healthCheckIntervalMs: 1_000 }, { logger: quiet, keepAlive: false, reconnectInitialMs: 250, reconnectMaxMs: 10_000 });
    await new Promise((r) => setTimeout(r, 4_000));
    const attempts = a.upgrades.length + b.upgrades.length;
    // Without the cap the backoff would be at 4 s by now (4 attempts); with it, about one a second.
    expect(attempts).toBeGreaterThanOrEqual(5);
    const times = [...a.upgrades, ...b.upgrades].sort((x, y) => x - y);
    const gaps = times.slice(1).map((t, i) => t - times[i]!);
    expect(Math.max(...gaps)).toBeLessThan(1_300);
    const leader = await replica({});
    open.push(leader);
    elected = leader.url; // not a configured server: the agent keeps rotating among its own
    await new Promise((r) => setTimeout(r, 1_500));
    expect(leader.upgrades).toHaveLength(0);
  });
});
