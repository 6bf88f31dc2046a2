/**
 * Webhooks through a real server: the fleet's events reach a receiver on loopback, signed; the
 * endpoint list, the delivery log, test events and redelivery over the API, with tenant-scoped
 * tokens held to their tenants; a reload with an unreadable secret keeps the endpoints in force.
 */
import { createHash } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { verifySignature, type NotificationEvent } from '../../src/notifications/index.js';
import { TestServer } from '../helpers/server-harness.js';
import { WebhookReceiver } from '../helpers/webhook-receiver.js';

const ADMIN = 'admin-token-0123456789';
const TEAM_A = 'team-a-token-0123456789';
const SECRET = 'webhook-secret-0123456789';
const sha256 = (text: string): string => createHash('sha256').update(text).digest('hex');
const GROUPS = { a: { web: { size: 2, template: 'web' } }, b: { web: { size: 1, template: 'web' } } };

let t: TestServer;
let receiver: WebhookReceiver;
let secretFile: string;

interface EndpointView {
  name: string;
  url: string;
  pending: number;
  dead: number;
  breaker: string;
}
interface DeliveryView {
  id: number;
  eventId: string;
  eventType: string;
  tenant: string | null;
  state: string;
  latencyMs: number | null;
  event: NotificationEvent;
}

function config(secret: string): Parameters<TestServer['writeConfig']>[0] {
  return {
    groups: GROUPS,
    server: { tokens: [{ name: 'team-a', sha256: sha256(TEAM_A), role: 'operator', tenants: ['a'] }] },
    notifications: [{ name: 'ops', url: receiver.url, secretFile: secret, events: ['instanceCreated', 'drainStarted'] }],
  };
}

beforeAll(async () => {
  receiver = await WebhookReceiver.start();
  t = new TestServer({ token: ADMIN, groups: GROUPS, shard: { healthCheckInterval: '1h', startupTimeout: '2h', resyncInterval: '0s' } });
  secretFile = join(t.dir, 'hook.secret');
  writeFileSync(secretFile, `${SECRET}\n`, { mode: 0o600 });
  t.writeConfig(config(secretFile));
  await t.start();
  await t.settle();
});

afterAll(async () => {
  await t.close();
  await receiver.close();
});

const created = (): NotificationEvent[] => receiver.accepted().map((r) => JSON.parse(r.body) as NotificationEvent).filter((e) => e.type === 'instanceCreated');

describe('webhooks through the server', () => {
  it("delivers the fleet's events to the endpoint, signed with its secret", async () => {
    await receiver.until(() => created().length === 3);
    for (const req of receiver.accepted()) {
      expect(verifySignature(String(req.headers['drover-signature']), req.body, [SECRET], Math.floor(Date.now() / 1000))).toMatchObject({ ok: true });
    }
    expect(new Set(created().map((e) => e.tenant))).toEqual(new Set(['a', 'b']));
    expect(created().every((e) => e.shard === 'test' && e.auditSeq !== null && e.instanceId !== null)).toBe(true);
  });

  it('lists endpoints with their URL as an origin only, and the delivery log with latencies', async () => {
    await receiver.until(() => created().length === 3);
    const list = await t.api<EndpointView[]>('GET', '/v1/notifications');
    expect(list.status).toBe(200);
    expect(list.body).toEqual([expect.objectContaining({ name: 'ops', url: `${new URL(receiver.url).origin}/…`, breaker: 'closed', dead: 0 })]);
    expect(JSON.stringify(list.body)).not.toContain('/hook');
    await expect.poll(async () => (await t.api<DeliveryView[]>('GET', '/v1/notifications/deliveries?state=delivered')).body.length).toBeGreaterThanOrEqual(3);
    const log = await t.api<DeliveryView[]>('GET', '/v1/notifications/deliveries?state=delivered&limit=2');
    expect(log.body).toHaveLength(2);
    expect(log.body[0]!.id).toBeGreaterThan(log.body[1]!.id);
    for (const d of log.body) expect(d.latencyMs).toBeGreaterThanOrEqual(0);
    expect((await t.api('GET', '/v1/notifications/deliveries?state=lost')).status).toBe(400);
    expect((await t.api('GET', '/v1/notifications/deliveries?limit=0')).status).toBe(400);
  });

  it('sends a test event to the named endpoint, and 404s for an unknown one', async () => {
    const sent = await t.api<{ eventId: string }>('POST', '/v1/notifications/ops/test');
    expect(sent.status).toBe(202);
    await receiver.until(() => receiver.accepted().some((r) => r.headers['drover-event-id'] === sent.body.eventId));
    expect((await t.api('POST', '/v1/notifications/nope/test')).status).toBe(404);
  });

  it('redelivers a dead letter on request, and refuses one that is not dead', async () => {
    await receiver.until(() => created().length === 3);
    const [row] = t.server.db.outbox.list({ state: 'delivered', limit: 1 });
    expect((await t.api('POST', `/v1/notifications/deliveries/${row!.id}/redeliver`)).status).toBe(409);
    const before = receiver.accepted().filter((r) => r.headers['drover-event-id'] === row!.eventId).length;
    // Gone dead (the retry schedule is the worker's test): the API's part is bringing it back.
    makeDeadLetter(row!.id);
    expect(t.server.db.outbox.get(row!.id)?.state).toBe('dead');
    const redelivered = await t.api<{ state: string }>('POST', `/v1/notifications/deliveries/${row!.id}/redeliver`);
    expect(redelivered.status).toBe(202);
    await receiver.until(() => receiver.accepted().filter((r) => r.headers['drover-event-id'] === row!.eventId).length === before + 1);
    await expect.poll(() => t.server.db.outbox.get(row!.id)?.state).toBe('delivered');
    expect((await t.api('POST', '/v1/notifications/deliveries/999999/redeliver')).status).toBe(404);
    expect((await t.api('POST', '/v1/notifications/deliveries/x1/redeliver')).status).toBe(400);
  });

  it("holds a tenant's token to its tenants: no endpoint list, no server-wide actions, only its deliveries", async () => {
    await receiver.until(() => created().length === 3);
    const asTeam = { Authorization: `Bearer ${TEAM_A}` };
    expect((await t.api('GET', '/v1/notifications', undefined, asTeam)).status).toBe(403);
    expect((await t.api('POST', '/v1/notifications/ops/test', undefined, asTeam)).status).toBe(403);
    expect((await t.api('POST', '/v1/notifications/ops/redeliver', undefined, asTeam)).status).toBe(403);
    const log = await t.api<DeliveryView[]>('GET', '/v1/notifications/deliveries', undefined, asTeam);
    expect(log.status).toBe(200);
    expect(log.body.length).toBeGreaterThan(0);
    expect(log.body.every((d) => d.tenant === 'a')).toBe(true);
    const other = t.server.db.outbox.list({ tenants: ['b'], limit: 1 })[0]!;
    expect((await t.api('POST', `/v1/notifications/deliveries/${other.id}/redeliver`, undefined, asTeam)).status).toBe(404);
  });

  it('keeps the endpoints in force when a reload names a secret file it cannot read', async () => {
    t.writeConfig({ ...config(join(t.dir, 'missing.secret')), notifications: [{ name: 'renamed', url: receiver.url, secretFile: join(t.dir, 'missing.secret') }] });
    // The reload lands (the groups are fine); the endpoints do not change.
    await expect.poll(() => t.server.config().notifications[0]?.name, { timeout: 10_000 }).toBe('renamed');
    const list = await t.api<EndpointView[]>('GET', '/v1/notifications');
    expect(list.body.map((e) => e.name)).toEqual(['ops']);
    const health = await t.api<{ configError: string | null }>('GET', '/healthz');
    expect(health.status).toBe(200);
  });
});

/** Turns a delivered row into a dead letter, through a second connection to the server's database. */
function makeDeadLetter(id: number): void {
  const db = new Database(join(t.dir, 'data', 'drover.db'));
  try {
    db.prepare("UPDATE outbox SET state = 'dead', last_status = 500, last_error = 'the receiver answered HTTP 500' WHERE id = ?").run(id);
  } finally {
    db.close();
  }
}
