/**
 * One-time agent bootstrap tokens: issued for a provider whose user data others can read,
 * redeemed once for the agent's credential, on the machine Drover created. BootstrapTokens alone
 * (in-memory store, ManualClock), then the route on a real server.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { AgentCredentials } from '../../src/agent/credentials.js';
import { AGENT_BOOTSTRAP_PATH } from '../../src/agent/protocol.js';
import { ManualClock } from '../../src/clock/index.js';
import { SystemClock } from '../../src/index.js';
import { BootstrapTokens, hashBootstrapToken } from '../../src/server/bootstrap.js';
import { openLocalDb, type LocalDb } from '../../src/store/index.js';
import { FakeAgent, TestServer } from '../helpers/server-harness.js';
import { TokenCloud } from '../helpers/token-cloud.js';

const SECRET = 'bootstrap-test-secret-0123456789';
const TTL = 30 * 60_000;

describe('bootstrap tokens', () => {
  const dbs: LocalDb[] = [];
  afterEach(() => {
    for (const db of dbs.splice(0)) db.close();
  });

  function setUp(providerId: string | null = 'i-0abc'): { db: LocalDb; clock: ManualClock; tokens: BootstrapTokens; credentials: AgentCredentials } {
    const db = openLocalDb(':memory:');
    dbs.push(db);
    const clock = new ManualClock();
    const credentials = new AgentCredentials(SECRET);
    db.insertInstance({ id: 'inst-1', tenant: 'default', group: 'web', templateName: 'web', templateHash: 'h', createReason: 'scaleUp', createdAt: clock.now(), providerId });
    return { db, clock, credentials, tokens: new BootstrapTokens({ db, clock, credentials, ttlMs: () => TTL, epoch: () => 7 }) };
  }

  it('issues random tokens of 256 bits and keeps only their hash', () => {
    const { db, tokens, clock } = setUp();
    const a = tokens.issue('inst-1');
    const b = tokens.issue('inst-1');
    expect(a).toMatch(/^[A-Za-z0-9_-]{43}$/);
    expect(b).not.toBe(a);
    const stored = db.getBootstrapToken(hashBootstrapToken(a));
    expect(stored).toEqual({ tokenHash: hashBootstrapToken(a), instanceId: 'inst-1', issuedAt: clock.now(), expiresAt: new Date(clock.nowMs() + TTL), usedAt: null, refusals: 0 });
    expect(db.getBootstrapToken(a)).toBeNull();
  });

  it('gives the credential for a good token on the right machine, once, and audits it', () => {
    const { db, tokens, credentials } = setUp();
    const token = tokens.issue('inst-1');
    const outcome = tokens.redeem({ instanceId: 'inst-1', token, providerId: 'i-0abc' });
    expect(outcome).toMatchObject({ ok: true, credential: credentials.issue('inst-1') });
    expect(db.listAudit({ instanceId: 'inst-1' })).toMatchObject([{ action: 'agentBootstrap', reason: 'bootstrapToken', actor: 'agent:inst-1', epoch: 7, detail: 'credential issued to provider id i-0abc' }]);
    expect(tokens.redeem({ instanceId: 'inst-1', token, providerId: 'i-0abc' })).toMatchObject({ ok: false, result: 'used', status: 401 });
  });

  it('keeps every unexpired token of an instance good until one is used, then refuses them all', () => {
    const { tokens } = setUp();
    // A create retried with the same idempotency key: the cloud keeps the first user data.
    const first = tokens.issue('inst-1');
    const second = tokens.issue('inst-1');
    const third = tokens.issue('inst-1');
    expect(tokens.redeem({ instanceId: 'inst-1', token: first, providerId: 'i-0abc' }).ok).toBe(true);
    expect(tokens.redeem({ instanceId: 'inst-1', token: second, providerId: 'i-0abc' })).toMatchObject({ ok: false, result: 'used', status: 401 });
    expect(tokens.redeem({ instanceId: 'inst-1', token: third, providerId: 'i-0abc' })).toMatchObject({ ok: false, result: 'used', status: 401 });
  });

  it('refuses an expired token, a token of another instance and a token it never issued with 401', async () => {
    const { db, tokens, clock } = setUp();
    db.insertInstance({ id: 'inst-2', tenant: 'default', group: 'web', templateName: 'web', templateHash: 'h', createReason: 'scaleUp', createdAt: clock.now(), providerId: 'i-0def' });
    const mine = tokens.issue('inst-1');
    const theirs = tokens.issue('inst-2');
    expect(tokens.redeem({ instanceId: 'inst-1', token: theirs, providerId: 'i-0abc' })).toMatchObject({ ok: false, result: 'unknown', status: 401 });
    expect(tokens.redeem({ instanceId: 'inst-1', token: 'A'.repeat(43), providerId: 'i-0abc' })).toMatchObject({ ok: false, result: 'unknown', status: 401 });
    await clock.advance(TTL - 1);
    expect(tokens.redeem({ instanceId: 'inst-2', token: theirs, providerId: 'i-0def' }).ok).toBe(true);
    await clock.advance(1);
    expect(tokens.redeem({ instanceId: 'inst-1', token: mine, providerId: 'i-0abc' })).toMatchObject({ ok: false, result: 'expired', status: 401 });
  });

  it('refuses another machine with 403 and audits that once, however often it tries; the token stays good for the right machine', () => {
    const { db, tokens } = setUp();
    const token = tokens.issue('inst-1');
    for (let i = 0; i < 5; i++) {
      expect(tokens.redeem({ instanceId: 'inst-1', token, providerId: 'i-0evil' })).toMatchObject({ ok: false, result: 'providerMismatch', status: 403 });
    }
    expect(db.listAudit({ instanceId: 'inst-1' })).toMatchObject([{ action: 'agentBootstrapRefused', reason: 'providerMismatch', detail: expect.stringContaining('i-0evil') }]);
    expect(db.getBootstrapToken(hashBootstrapToken(token))?.refusals).toBe(5);
    expect(tokens.redeem({ instanceId: 'inst-1', token, providerId: 'i-0abc' }).ok).toBe(true);
  });

  it('answers 503 while the provider id is not recorded, without spending the token', () => {
    const { db, tokens } = setUp(null);
    const token = tokens.issue('inst-1');
    expect(tokens.redeem({ instanceId: 'inst-1', token, providerId: 'i-0abc' })).toMatchObject({ ok: false, result: 'providerUnknown', status: 503 });
    db.updateInstance('inst-1', { providerId: 'i-0abc' });
    expect(tokens.redeem({ instanceId: 'inst-1', token, providerId: 'i-0abc' }).ok).toBe(true);
  });

  it('refuses a deleted instance with 403', () => {
    const { db, tokens, clock } = setUp();
    db.insertInstance({ id: 'gone', tenant: 'default', group: 'web', templateName: 'web', templateHash: 'h', createReason: 'scaleUp', createdAt: clock.now(), providerId: 'i-0gone', status: 'deleted', deletedAt: clock.now(), deleteReason: 'scaleDown' });
    const token = tokens.issue('gone');
    expect(tokens.redeem({ instanceId: 'gone', token, providerId: 'i-0gone' })).toMatchObject({ ok: false, result: 'deleted', status: 403 });
  });
});

describe('POST /v1/agent/bootstrap', () => {
  const ADMIN = 'admin-token-0123456789';
  let t: TestServer | undefined;
  afterEach(async () => {
    await t?.close();
    t = undefined;
  });

  const post = async (server: TestServer, body: unknown): Promise<{ status: number; json: Record<string, unknown>; headers: Headers }> => {
    const res = await fetch(`${server.url}${AGENT_BOOTSTRAP_PATH}`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: typeof body === 'string' ? body : JSON.stringify(body) });
    return { status: res.status, json: (await res.json()) as Record<string, unknown>, headers: res.headers };
  };

  it('hands a token-bootstrap provider a one-time token, never the credential, and exchanges it without an API token for a credential the agent endpoint accepts', async () => {
    const cloud = new TokenCloud({ clock: new SystemClock(), seed: 3 });
    t = await new TestServer({ token: ADMIN, provider: cloud, shard: { healthCheckInterval: '1h', startupTimeout: '2h' } }).start();
    await t.settle();
    const [inst] = t.server.db.listInstances();
    const userData = cloud.userData.get(inst!.id)![0]!;
    expect(Object.keys(userData).sort()).toEqual(['DROVER_BOOTSTRAP_TOKEN', 'DROVER_INSTANCE_ID', 'DROVER_SERVER']);
    expect(userData.DROVER_INSTANCE_ID).toBe(inst!.id);
    expect(userData.DROVER_SERVER).toBe(t.url);

    const answer = await post(t, { instanceId: inst!.id, token: userData.DROVER_BOOTSTRAP_TOKEN, providerId: inst!.providerId });
    expect(answer.status).toBe(200);
    expect(answer.json).toEqual({ credential: t.credential(inst!.id) });
    expect(answer.headers.get('cache-control')).toBe('no-store');
    const agent = await FakeAgent.connect(t.url, inst!.id, answer.json.credential as string);
    expect(await agent.next((m) => m.type === 'welcome')).toMatchObject({ instanceId: inst!.id });
    agent.ws.terminate();
    expect(t.server.db.listAudit({ instanceId: inst!.id }).map((a) => a.action)).toContain('agentBootstrap');

    const again = await post(t, { instanceId: inst!.id, token: userData.DROVER_BOOTSTRAP_TOKEN, providerId: inst!.providerId });
    expect(again.status).toBe(401);
    expect(again.json.error).toMatch(/already/);
  });

  it('answers another machine 403 and a token it never issued 401', async () => {
    const cloud = new TokenCloud({ clock: new SystemClock(), seed: 3 });
    t = await new TestServer({ token: ADMIN, provider: cloud, shard: { healthCheckInterval: '1h', startupTimeout: '2h' } }).start();
    await t.settle();
    const [inst] = t.server.db.listInstances();
    const token = cloud.userData.get(inst!.id)![0]!.DROVER_BOOTSTRAP_TOKEN;
    expect((await post(t, { instanceId: inst!.id, token, providerId: 'i-0someoneelse' })).status).toBe(403);
    expect((await post(t, { instanceId: inst!.id, token: 'x'.repeat(43), providerId: inst!.providerId })).status).toBe(401);
  });

  it('answers 503 with Retry-After until the create has answered, then the credential', async () => {
    const cloud = new TokenCloud({ clock: new SystemClock(), seed: 3 });
    let release: () => void = () => undefined;
    cloud.hold = new Promise((resolve) => (release = resolve));
    const created = cloud.nextCreate();
    t = await new TestServer({ token: ADMIN, provider: cloud, groups: { default: { web: { size: 1, template: 'web' } } }, shard: { healthCheckInterval: '1h', startupTimeout: '2h' } }).start();
    await created;
    const [instanceId, [userData]] = [...cloud.userData.entries()][0]!;
    const token = userData!.DROVER_BOOTSTRAP_TOKEN;
    const early = await post(t, { instanceId, token, providerId: 'sim-3-000001' });
    expect(early.status).toBe(503);
    expect(early.headers.get('retry-after')).toBe('2');
    release();
    await t.settle();
    const providerId = t.server.db.getInstance(instanceId)!.providerId;
    expect(providerId).toBe('sim-3-000001');
    expect((await post(t, { instanceId, token, providerId })).status).toBe(200);
  });

  it('refuses a body that does not validate with 400, and one over 4 KiB with 413', async () => {
    const cloud = new TokenCloud({ clock: new SystemClock(), seed: 3 });
    t = await new TestServer({ token: ADMIN, provider: cloud, shard: { healthCheckInterval: '1h', startupTimeout: '2h' } }).start();
    for (const body of ['', 'not json', '[]', { instanceId: 'a', token: 'short', providerId: 'i-1' }, { instanceId: 'a', token: 'A'.repeat(43), providerId: 'i 1' }, { instanceId: 'a', token: 'A'.repeat(43), providerId: 'i-1', extra: 1 }]) {
      expect((await post(t, body)).status, JSON.stringify(body)).toBe(400);
    }
    expect((await post(t, { instanceId: 'a'.repeat(5_000), token: 'A'.repeat(43), providerId: 'i-1' })).status).toBe(413);
  });

  it('hands a provider that says nothing the credential itself, as before', async () => {
    t = await new TestServer({ token: ADMIN }).start();
    const seen: Array<Record<string, string> | undefined> = [];
    const original = t.provider.create.bind(t.provider);
    t.provider.create = (req) => {
      seen.push(req.userData);
      return original(req);
    };
    await t.api('PUT', '/v1/groups/default/web/size', { size: 3 });
    await t.settle();
    const id = t.server.db.listInstances()[2]!.id;
    expect(seen.at(-1)).toEqual({ DROVER_SERVER: t.url, DROVER_AGENT_CREDENTIAL: t.credential(id) });
  });
});
