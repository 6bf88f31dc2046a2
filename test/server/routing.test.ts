/**
 * HA routing: a replica that does not lead serves reads, redirects changes to the leader (307),
 * answers 503 while no leader is known, refuses agents with the leader's address, and closes its
 * agents' connections when it loses leadership. The CLI's client follows the redirect with its
 * token.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { WebSocket } from 'ws';
import { ApiClient } from '../../src/cli/client.js';
import type { LeaderElector } from '../../src/leader/index.js';
import { ManualClock } from '../../src/clock/index.js';
import { FakeAgent, TestServer, type TestServerOptions } from '../helpers/server-harness.js';

/** An elector a test drives. */
class ManualElector implements LeaderElector {
  private readonly listeners = new Set<(leader: boolean) => void>();
  constructor(
    private leader: boolean,
    public address: string | null = null,
  ) {}
  async start(): Promise<void> {
    if (this.leader) for (const l of this.listeners) l(true);
  }
  async stop(): Promise<void> {}
  isLeader(): boolean {
    return this.leader;
  }
  epoch(): number | null {
    return this.leader ? 3 : null;
  }
  leaderAddress(): string | null {
    return this.address;
  }
  onChange(listener: (leader: boolean) => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }
  set(leader: boolean): void {
    this.leader = leader;
    for (const l of this.listeners) l(leader);
  }
}

const servers: TestServer[] = [];
afterEach(async () => {
  for (const s of servers.splice(0)) await s.close();
});

async function pair(
  token?: string,
  leaderSection?: Record<string, unknown>,
  leaderOptions: Pick<TestServerOptions, 'clock' | 'shard'> = {},
): Promise<{ leader: TestServer; follower: TestServer; followerElector: ManualElector }> {
  const leader = await new TestServer({ ...(token ? { token } : {}), ...(leaderSection ? { leader: leaderSection } : {}), ...leaderOptions, elector: new ManualElector(true) }).start();
  servers.push(leader);
  const followerElector = new ManualElector(false, leader.url);
  const follower = await new TestServer({ ...(token ? { token } : {}), elector: followerElector }).start();
  servers.push(follower);
  await leader.settle();
  return { leader, follower, followerElector };
}

/** Agent connections the server holds (its gauge; the hub updates it as it closes them). */
async function agentConnections(server: TestServer): Promise<number> {
  const text = await (await fetch(`${server.url}/metrics`)).text();
  return Number(/^drover_agent_connections (\d+)$/m.exec(text)?.[1]);
}

/** The HTTP status and headers with which `url` refuses an agent's upgrade. */
function agentRefusal(url: string): Promise<{ status: number; leader: string | undefined }> {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(`${url.replace(/^http/, 'ws')}/v1/agent`, { headers: { 'X-Drover-Instance': 'i-x', Authorization: 'Bearer x' } });
    ws.once('unexpected-response', (_req, res) => {
      resolve({ status: res.statusCode ?? 0, leader: res.headers['x-drover-leader'] as string | undefined });
      ws.terminate();
    });
    ws.once('open', () => reject(new Error('accepted')));
    ws.once('error', () => undefined);
  });
}

describe('leader routing', () => {
  it('serves reads on a follower and redirects changes to the leader with 307', async () => {
    const { leader, follower } = await pair();
    expect((await follower.api('GET', '/v1/groups')).status).toBe(200);
    const res = await fetch(`${follower.url}/v1/groups/default/web/size`, { method: 'PUT', redirect: 'manual', headers: { 'Content-Type': 'application/json' }, body: '{"size":4}' });
    expect(res.status).toBe(307);
    expect(res.headers.get('location')).toBe(`${leader.url}/v1/groups/default/web/size`);
    expect(res.headers.get('x-drover-leader')).toBe(leader.url);
    // fetch follows a 307 with method and body kept.
    const followed = await follower.api<{ size: number }>('PUT', '/v1/groups/default/web/size', { size: 4 });
    expect(followed.status).toBe(200);
    expect(followed.body.size).toBe(4);
    expect(leader.server.reconciler.effectiveSettings(leader.server.config(), 'default', 'web')?.size).toBe(4);
    expect(follower.server.reconciler.effectiveSettings(follower.server.config(), 'default', 'web')?.size).toBe(2);
  });

  it('sends an agent\'s bootstrap exchange on a follower to the leader with 307, without an API token', async () => {
    const { leader, follower } = await pair('s3cret-token-0123');
    const res = await fetch(`${follower.url}/v1/agent/bootstrap`, { method: 'POST', redirect: 'manual', headers: { 'Content-Type': 'application/json' }, body: JSON.stringify({ instanceId: 'i-1', token: 'A'.repeat(43), providerId: 'p-1' }) });
    expect(res.status).toBe(307);
    expect(res.headers.get('location')).toBe(`${leader.url}/v1/agent/bootstrap`);
  });

  it('answers 503 with Retry-After while no leader is known, or when the known leader is itself', async () => {
    const { follower, followerElector } = await pair();
    followerElector.address = null;
    const none = await follower.api<{ error: string }>('POST', '/v1/instances/i-1/drain-ack');
    expect(none.status).toBe(503);
    expect(none.headers.get('retry-after')).toBe('1');
    expect(none.body.error).toMatch(/no leader is known/);
    followerElector.address = follower.url;
    expect((await follower.api('PUT', '/v1/groups/default/web/size', { size: 1 })).status).toBe(503);
  });

  it('checks the token before redirecting, and the CLI client follows the redirect with its token', async () => {
    const { leader, follower } = await pair('s3cret-token-0123');
    const anonymous = await fetch(`${follower.url}/v1/groups/default/web/size`, { method: 'PUT', redirect: 'manual', body: '{"size":3}', headers: { 'Content-Type': 'application/json' } });
    expect(anonymous.status).toBe(401);
    // Both replicas listed, as an operator lists them: the CLI sends its token to listed servers only.
    const client = new ApiClient({ server: `${follower.url},${leader.url}`, token: 's3cret-token-0123' });
    const answer = await client.request<{ size: number; previousSize: number }>('PUT', '/v1/groups/default/web/size', { size: 3 });
    expect(answer).toMatchObject({ size: 3, previousSize: 2 });
    expect(leader.server.reconciler.effectiveSettings(leader.server.config(), 'default', 'web')?.size).toBe(3);
  });

  it('refuses agents on a follower with 503 and the leader\'s address; a leader closes its agents once leadership is lost for a TTL, not on a brief lapse', async () => {
    // The leader's time is a ManualClock: "lost for a TTL" is measured on the clock the server
    // schedules with, so a loaded machine cannot stretch a brief lapse into a TTL. Its health
    // interval is an hour so that no ping falls due while the test moves the clock (a pong
    // cannot arrive between two timers fired in one move, and two missed pongs end a connection).
    const TTL_MS = 1_000;
    const clock = new ManualClock(new Date());
    const { leader, follower } = await pair(undefined, { ttl: `${TTL_MS / 1_000}s` }, { clock, shard: { healthCheckInterval: '1h' } });
    expect(await agentRefusal(follower.url)).toEqual({ status: 503, leader: leader.url });
    const [inst] = leader.server.db.listInstances();
    const agent = await FakeAgent.connect(leader.url, inst!.id, leader.credential(inst!.id));
    await agent.next((m) => m.type === 'welcome');
    expect(await agentConnections(leader)).toBe(1);
    const elector = leader.server.elector as ManualElector;
    // A lapse of half a TTL, renewed in time: the connection stays.
    elector.set(false);
    await clock.advance(TTL_MS / 2);
    elector.set(true);
    await clock.advance(TTL_MS / 4);
    expect(await agentConnections(leader)).toBe(1);
    // Lost for good, before the lapse's TTL would have ended: kept a whole TTL from this loss
    // (the lease may still be ours at etcd until then; the lapse's TTL ends on the way), closed then.
    elector.set(false);
    await clock.advance(TTL_MS - 1);
    expect(await agentConnections(leader)).toBe(1);
    await clock.advance(1);
    expect(await agentConnections(leader)).toBe(0);
    expect((await agent.closed).code).toBe(4503);
    // It did not count as a disconnect: no check of the instance follows.
    expect(leader.server.reconciler.stats().queueDepth).toBe(0);
  });

  it('answers an agent of an instance it does not know yet with 503 (retry), not 403', async () => {
    const { leader } = await pair();
    await expect(FakeAgent.connect(leader.url, 'i-notyet', leader.credential('i-notyet'))).rejects.toThrow(/503/);
  });
});
