/**
 * The delivery worker against a real HTTP receiver on loopback, over a real SQLite outbox, with
 * the manual clock: retries, order per instance, dead letters, the breaker, timeouts, the drain
 * deadline watch, leader-only delivery.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { pino } from 'pino';
import { ManualClock } from '../../src/clock/index.js';
import {
  Notifier,
  auditRouter,
  verifySignature,
  type NotificationEndpoint,
  type NotificationEvent,
  type NotificationSettings,
} from '../../src/notifications/index.js';
import { openLocalDb, type AuditAction, type LocalDb } from '../../src/store/index.js';
import { setRow } from '../helpers/store-fixtures.js';
import { WebhookReceiver, type Answer } from '../helpers/webhook-receiver.js';

const SECRET = 'current-secret-0123456789';
const OLD_SECRET = 'previous-secret-0123456789';

let receiver: WebhookReceiver | undefined;
let notifier: Notifier | undefined;
let db: LocalDb | undefined;

afterEach(async () => {
  await notifier?.stop();
  await receiver?.close();
  db?.close();
  notifier = undefined;
  receiver = undefined;
  db = undefined;
});

function endpoint(url: string, over: Partial<NotificationEndpoint> = {}): NotificationEndpoint {
  return { name: 'hook', url, events: null, tenants: null, secrets: [SECRET], format: 'json', timeoutMs: 5_000, retryForMs: 86_400_000, maxConcurrency: 4, ...over };
}

interface Rig {
  clock: ManualClock;
  db: LocalDb;
  notifier: Notifier;
  receiver: WebhookReceiver;
  settings: { current: NotificationSettings };
  leader: { current: boolean };
  audit(action: AuditAction, instanceId: string | null, reason?: string): void;
  /** Lets deliveries in flight finish and their bookkeeping land. */
  quiesce(): Promise<void>;
  /** Advances the clock to each next timer until `done` holds (or a bound). */
  runUntil(done: () => boolean, maxSteps?: number): Promise<void>;
}

async function rig(answer: (n: number, body: string) => Answer, over: Partial<NotificationEndpoint> = {}, breaker?: { failureThreshold: number; openMs: number; maxOpenMs: number }): Promise<Rig> {
  const clock = new ManualClock(new Date('2026-06-01T00:00:00Z'));
  receiver = await WebhookReceiver.start(answer);
  db = openLocalDb(':memory:');
  const settings = { current: { shard: 's1', endpoints: new Map([['hook', endpoint(receiver.url, over)]]) } as NotificationSettings };
  const leader = { current: true };
  db.setOutboxRouter(auditRouter(() => settings.current));
  notifier = new Notifier({
    outbox: db.outbox,
    clock,
    logger: pino({ level: 'silent' }),
    settings: () => settings.current,
    isLeader: () => leader.current,
    userAgent: 'drover/test',
    random: () => 0.5,
    ...(breaker ? { breaker } : {}),
  });
  const n = notifier;
  const d = db;
  d.subscribe((c) => {
    if (c.kind === 'audit') n.wake();
  });
  n.start();
  const quiesce = async (): Promise<void> => {
    await expect.poll(() => n.inFlight, { timeout: 5_000, interval: 5 }).toBe(0);
    for (let i = 0; i < 5; i++) await new Promise((r) => setImmediate(r));
  };
  return {
    clock,
    db: d,
    notifier: n,
    receiver,
    settings,
    leader,
    audit: (action, instanceId, reason = 'test') => {
      d.appendAudit({ at: clock.now(), tenant: 'a', group: 'web', instanceId, action, reason });
    },
    quiesce,
    runUntil: async (done, maxSteps = 500) => {
      for (let i = 0; i < maxSteps && !done(); i++) {
        await quiesce();
        if (done()) return;
        const next = clock.nextTimerAt();
        if (next === null) break;
        await clock.advanceTo(next);
      }
      await quiesce();
    },
  };
}

const eventOf = (body: string): NotificationEvent => JSON.parse(body) as NotificationEvent;

describe('Notifier', () => {
  it('delivers each event once, signed with every active secret, with its id and type in headers', async () => {
    const r = await rig(() => 200, { secrets: [SECRET, OLD_SECRET] });
    r.audit('protect', 'i-1'); // not an event
    r.audit('drain', 'i-1', 'unhealthy');
    await r.receiver.until(() => r.receiver.accepted().length === 1);
    await r.quiesce();
    const [req] = r.receiver.requests;
    expect(r.receiver.requests).toHaveLength(1);
    const event = eventOf(req!.body);
    expect(event).toMatchObject({ type: 'drainStarted', tenant: 'a', group: 'web', instanceId: 'i-1', reason: 'unhealthy', shard: 's1' });
    expect(req!.headers['drover-event-id']).toBe(event.id);
    expect(req!.headers['drover-event-type']).toBe('drainStarted');
    expect(req!.headers['drover-delivery-attempt']).toBe('1');
    expect(req!.headers['user-agent']).toBe('drover/test');
    const header = String(req!.headers['drover-signature']);
    const now = Math.floor(r.clock.nowMs() / 1000);
    // A receiver on either secret accepts it; one on another secret, or a changed body, does not.
    expect(verifySignature(header, req!.body, [SECRET], now)).toMatchObject({ ok: true });
    expect(verifySignature(header, req!.body, [OLD_SECRET], now)).toMatchObject({ ok: true });
    expect(verifySignature(header, req!.body, ['another-secret-0123456'], now)).toMatchObject({ ok: false });
    expect(verifySignature(header, req!.body.replace('unhealthy', 'expiry'), [SECRET], now)).toMatchObject({ ok: false });
    const [row] = r.db.outbox.list({});
    expect(row).toMatchObject({ state: 'delivered', attempts: 1, lastStatus: 200, eventId: event.id });
  });

  it('a receiver that fails for a while gets every event, in order per instance, once it recovers', async () => {
    let failing = true;
    const r = await rig(() => (failing ? 503 : 200));
    const order: Array<[string, AuditAction]> = [
      ['i-1', 'drain'],
      ['i-2', 'drain'],
      ['i-1', 'drainAcked'],
      ['i-2', 'deleted'],
      ['i-1', 'deleted'],
      ['i-3', 'created'],
    ];
    for (const [id, action] of order) r.audit(action, id);
    await r.runUntil(() => r.receiver.requests.length >= 12);
    expect(r.receiver.accepted()).toHaveLength(0);
    failing = false;
    await r.runUntil(() => r.receiver.accepted().length === order.length);
    const accepted = r.receiver.accepted().map((q) => eventOf(q.body));
    expect(new Set(accepted.map((e) => e.id)).size).toBe(order.length);
    for (const id of ['i-1', 'i-2', 'i-3']) {
      const expected = order.filter(([i]) => i === id).map(([, a]) => a);
      const got = accepted.filter((e) => e.instanceId === id).map((e) => e.auditSeq);
      expect(got).toEqual([...got].sort((x, y) => x! - y!));
      expect(got).toHaveLength(expected.length);
    }
    // While an instance's earlier event was failing, its later ones were never sent before it.
    const firstSent = new Map<string, number>();
    for (const q of r.receiver.requests) {
      const e = eventOf(q.body);
      const key = `${e.instanceId}`;
      const seq = e.auditSeq!;
      expect(seq).toBeGreaterThanOrEqual(firstSent.get(key) ?? 0);
      firstSent.set(key, seq);
    }
    expect(r.db.outbox.list({ state: 'pending' })).toHaveLength(0);
  });

  it('keeps an event that fails until retryFor as a dead letter, and delivers it when redelivered', async () => {
    let status = 500;
    const r = await rig(() => status, { retryForMs: 60_000 });
    r.audit('deleted', 'i-1');
    await r.runUntil(() => r.db.outbox.list({ state: 'dead' }).length === 1);
    const [dead] = r.db.outbox.list({ state: 'dead' });
    expect(dead!.attempts).toBeGreaterThan(2);
    expect(dead!.lastStatus).toBe(500);
    expect(dead!.lastError).toContain('HTTP 500');
    expect(r.clock.nowMs() - dead!.createdAt).toBeGreaterThanOrEqual(60_000);
    const sent = r.receiver.requests.length;
    await r.clock.advance(3_600_000);
    await r.quiesce();
    expect(r.receiver.requests).toHaveLength(sent);

    status = 200;
    expect(r.notifier.redeliver(dead!.id)).toBe('ok');
    expect(r.notifier.redeliver(dead!.id)).toBe('notDead');
    await r.receiver.until(() => r.receiver.accepted().length === 1);
    await r.quiesce();
    expect(r.db.outbox.get(dead!.id)).toMatchObject({ state: 'delivered' });
    expect(eventOf(r.receiver.accepted()[0]!.body).id).toBe(dead!.eventId);
  });

  it('stops calling an endpoint that keeps failing, then lets one probe through after the cool-off', async () => {
    let status = 500;
    const r = await rig(() => status, { maxConcurrency: 1 }, { failureThreshold: 3, openMs: 60_000, maxOpenMs: 600_000 });
    for (let i = 1; i <= 5; i++) r.audit('created', `i-${i}`);
    await r.runUntil(() => r.receiver.requests.length >= 3);
    expect(r.receiver.requests).toHaveLength(3);
    const open = r.notifier.status()[0]!;
    expect(open.breaker).toBe('open');
    const reopensAt = Date.parse(open.breakerOpenUntil!);
    expect(reopensAt - r.clock.nowMs()).toBeGreaterThan(55_000);
    // The retries fall due within seconds, but the breaker holds them for its minute.
    await r.clock.advanceTo(reopensAt - 1);
    await r.quiesce();
    expect(r.receiver.requests).toHaveLength(3);
    status = 200;
    await r.clock.advanceTo(reopensAt);
    await r.receiver.until(() => r.receiver.requests.length >= 4);
    await r.runUntil(() => r.receiver.accepted().length === 5);
    expect(r.receiver.accepted()).toHaveLength(5);
    expect(r.notifier.status()[0]!.breaker).toBe('closed');
  });

  it('fails an attempt the receiver does not answer at the endpoint timeout, and retries it', async () => {
    const r = await rig((n) => (n === 1 ? 'hang' : 200), { timeoutMs: 2_000 });
    r.audit('drain', 'i-1');
    await r.receiver.until(() => r.receiver.requests.length === 1);
    expect(r.notifier.inFlight).toBe(1);
    await r.clock.advance(2_000);
    await r.quiesce();
    const [row] = r.db.outbox.list({});
    expect(row).toMatchObject({ state: 'pending', attempts: 1, lastError: 'no answer within 2000 ms' });
    await r.runUntil(() => r.receiver.accepted().length === 1);
    expect(r.db.outbox.get(row!.id)).toMatchObject({ state: 'delivered', attempts: 2 });
  });

  it('delivers only while this server leads', async () => {
    const r = await rig(() => 200);
    r.leader.current = false;
    r.audit('drain', 'i-1');
    await r.clock.advance(120_000);
    await r.quiesce();
    expect(r.receiver.requests).toHaveLength(0);
    r.leader.current = true;
    r.notifier.wake();
    await r.receiver.until(() => r.receiver.accepted().length === 1);
  });

  it('warns once when a drain nears its deadline, and again when the drain is extended', async () => {
    const r = await rig(() => 200, { events: new Set(['drainDeadlineNear']) });
    const start = r.clock.nowMs();
    r.db.insertInstance({ id: 'i-9', tenant: 'a', group: 'web', templateName: 'web', templateHash: 'h', createReason: 'scaleUp', createdAt: r.clock.now() });
    setRow(r.db, 'i-9', { status: 'draining', drainStartedAt: new Date(start), drainDeadline: new Date(start + 10 * 60_000), drainReason: 'expiry' });
    r.notifier.drainsChanged();
    // A fifth of ten minutes: the warning comes at 8 minutes, not before.
    await r.clock.advance(8 * 60_000 - 1_000);
    await r.quiesce();
    expect(r.receiver.requests).toHaveLength(0);
    await r.clock.advance(1_000);
    await r.receiver.until(() => r.receiver.accepted().length === 1);
    const event = eventOf(r.receiver.accepted()[0]!.body);
    expect(event).toMatchObject({ type: 'drainDeadlineNear', instanceId: 'i-9', reason: 'expiry', drainDeadline: new Date(start + 10 * 60_000).toISOString() });
    await r.clock.advance(60_000);
    await r.quiesce();
    expect(r.receiver.requests).toHaveLength(1);
    // Extended to an hour: a new warning, five minutes before the new deadline.
    setRow(r.db, 'i-9', { drainDeadline: new Date(start + 60 * 60_000) });
    r.notifier.drainsChanged();
    await r.clock.advanceTo(start + 55 * 60_000 - 1_000);
    await r.quiesce();
    expect(r.receiver.requests).toHaveLength(1);
    await r.clock.advance(1_000);
    await r.receiver.until(() => r.receiver.accepted().length === 2);
  });

  it('keeps the pending events of an endpoint removed from the config as dead letters', async () => {
    const r = await rig(() => 200);
    r.leader.current = false;
    r.audit('drain', 'i-1');
    r.settings.current = { shard: 's1', endpoints: new Map() };
    r.leader.current = true;
    r.notifier.wake();
    await r.clock.advance(1);
    await r.quiesce();
    const [row] = r.db.outbox.list({});
    expect(row).toMatchObject({ state: 'dead', lastError: 'notification endpoint "hook" is no longer in the config' });
    expect(r.notifier.redeliver(row!.id)).toBe('noEndpoint');
    expect(r.receiver.requests).toHaveLength(0);
  });

  it('sends a chat message body for format slack, its markup escaped', async () => {
    const r = await rig(() => 200, { format: 'slack' });
    r.db.appendAudit({ at: r.clock.now(), tenant: 'a', group: 'web', instanceId: 'i-1', action: 'drain', reason: 'operator', detail: 'asked by <ops> & co' });
    await r.receiver.until(() => r.receiver.accepted().length === 1);
    const body = JSON.parse(r.receiver.requests[0]!.body) as { text: string };
    expect(body.text).toBe('[drover s1] drainStarted a/web i-1 (operator: asked by &lt;ops&gt; &amp; co)');
  });

  it('a test event goes to the named endpoint only', async () => {
    const r = await rig(() => 200);
    expect(r.notifier.sendTest('nope', 'ops')).toBeNull();
    const id = r.notifier.sendTest('hook', 'ops');
    await r.receiver.until(() => r.receiver.accepted().length === 1);
    expect(eventOf(r.receiver.requests[0]!.body)).toMatchObject({ id, type: 'test', actor: 'ops' });
  });
});

describe('the outbox', () => {
  it('writes an audit entry and its events together or not at all', () => {
    const store = openLocalDb(':memory:');
    try {
      // A row the table refuses (no payload): the entry must not land without its event.
      store.setOutboxRouter(() => [{ eventId: 'e1', endpoint: 'hook', eventType: 'drainStarted', tenant: 'a', orderKey: 'k', payload: null as unknown as string, createdAt: 1, giveUpAt: 2 }]);
      expect(() => store.appendAudit({ at: new Date(), tenant: 'a', group: 'web', instanceId: 'i-1', action: 'drain', reason: 'x' })).toThrow();
      expect(store.listAudit({})).toHaveLength(0);
      store.setOutboxRouter(auditRouter(() => ({ shard: 's', endpoints: new Map([['hook', endpoint('http://127.0.0.1:9/')]]) })));
      store.appendAudit({ at: new Date(), tenant: 'a', group: 'web', instanceId: 'i-1', action: 'drain', reason: 'x' });
      expect(store.listAudit({})).toHaveLength(1);
      expect(store.outbox.list({})).toHaveLength(1);
    } finally {
      store.close();
    }
  });

  it('routes an event only to endpoints that want its type and tenant', () => {
    const store = openLocalDb(':memory:');
    try {
      const endpoints = new Map([
        ['all', endpoint('http://127.0.0.1:9/', { name: 'all' })],
        ['drains-of-b', endpoint('http://127.0.0.1:9/', { name: 'drains-of-b', events: new Set(['drainStarted']), tenants: new Set(['b']) })],
      ]);
      store.setOutboxRouter(auditRouter(() => ({ shard: 's', endpoints })));
      store.appendAudit({ at: new Date(), tenant: 'a', group: 'web', instanceId: 'i-1', action: 'drain', reason: 'x' });
      store.appendAudit({ at: new Date(), tenant: 'b', group: 'web', instanceId: 'i-2', action: 'drain', reason: 'x' });
      store.appendAudit({ at: new Date(), tenant: 'b', group: 'web', instanceId: 'i-2', action: 'deleted', reason: 'x' });
      const rows = store.outbox.list({}).map((r) => `${r.endpoint}:${r.tenant}:${r.eventType}`).sort();
      expect(rows).toEqual(['all:a:drainStarted', 'all:b:drainStarted', 'all:b:instanceDeleted', 'drains-of-b:b:drainStarted']);
    } finally {
      store.close();
    }
  });
});
