/**
 * Webhooks end to end: a real `drover server` (local provider, real instance processes) delivers
 * its events to a real receiver on loopback. What is checked is what a receiver relies on: every
 * event the audit produced arrives (at least once), in order per instance, signed — across a
 * kill -9 of the server mid-delivery, and across a receiver that fails for a while.
 */
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, beforeAll, describe, expect, it } from 'vitest';
import { EVENT_OF_AUDIT_ACTION, verifySignature, type NotificationEvent } from '../../src/notifications/index.js';
import { WebhookReceiver, type Answer, type ReceivedRequest } from '../helpers/webhook-receiver.js';
import { ProcessServer, requireBuild, waitFor, type InstanceRow } from './process-harness.js';

const SECRET = 'e2e-webhook-secret-0123456789';
const SHARD = 'e2e';

let s: ProcessServer | undefined;
let receiver: WebhookReceiver | undefined;
beforeAll(() => requireBuild());
afterEach(async () => {
  await s?.cleanup();
  await receiver?.close();
  s = undefined;
  receiver = undefined;
});

interface AuditRow {
  seq: number;
  action: string;
  instanceId: string | null;
  tenant: string | null;
  group: string | null;
}

interface EndpointRow {
  name: string;
  pending: number;
  dead: number;
}

/** A server whose group default/web drains with a command (so a drain is started, acknowledged, then deleted), sending every event to `url`. */
async function serverWith(url: string, size: number, hook: Record<string, unknown>): Promise<ProcessServer> {
  const server = new ProcessServer();
  const secretFile = join(server.dir, 'hook.secret');
  writeFileSync(secretFile, `${SECRET}\n`, { mode: 0o600 });
  await server.writeConfig(
    { default: { web: { size, template: 'web', drainTimeout: '20s' } } },
    {
      templates: { web: { command: ['node', '-e', 'setInterval(() => {}, 1 << 30)'], drainCommand: ['sh', '-c', 'sleep 1'] } },
      notifications: [{ name: 'hook', url, secretFile, ...hook }],
    },
  );
  return server;
}

/** The event ids the audit produced so far, oldest first (an entry is an event when the catalogue says so). */
async function auditEventIds(server: ProcessServer): Promise<string[]> {
  const { status, body } = await server.api<AuditRow[]>('GET', '/v1/audit?after=0&limit=500');
  expect(status).toBe(200);
  expect(body.length).toBeLessThan(500); // one page holds the whole trail
  return body.filter((a) => EVENT_OF_AUDIT_ACTION[a.action as keyof typeof EVENT_OF_AUDIT_ACTION] !== undefined).map((a) => `ev-${SHARD}-${a.seq}`);
}

async function endpoint(server: ProcessServer): Promise<EndpointRow> {
  const { status, body } = await server.api<EndpointRow[]>('GET', '/v1/notifications');
  expect(status).toBe(200);
  const row = body.find((e) => e.name === 'hook');
  if (!row) throw new Error(`endpoint "hook" is not listed: ${JSON.stringify(body)}`);
  return row;
}

const eventOf = (r: ReceivedRequest): NotificationEvent => JSON.parse(r.body) as NotificationEvent;
const accepted = (r: ReceivedRequest): boolean => typeof r.answered === 'number' && r.answered >= 200 && r.answered < 300;

/** Every request carries a signature that verifies with the secret, made when it was sent. */
function expectSigned(requests: readonly ReceivedRequest[]): void {
  for (const r of requests) {
    const check = verifySignature(String(r.headers['drover-signature']), r.body, [SECRET], Math.floor(r.receivedAtMs / 1000));
    expect(check, `signature of request ${r.n}`).toMatchObject({ ok: true });
    expect(r.headers['drover-event-id']).toBe(eventOf(r).id);
  }
}

const keyOf = (e: NotificationEvent): string => (e.instanceId ? `instance:${e.instanceId}` : `group:${e.tenant}/${e.group}`);

/**
 * In order per instance (the order key: its instance, else its group): no request for an event
 * is made before every earlier event of its key (audit order) has been accepted. Repeats are
 * allowed (at least once: a delivery whose answer was lost is sent again before the next).
 */
function expectOrderedPerKey(requests: readonly ReceivedRequest[]): void {
  const acceptedAt = new Map<string, number>(); // event id → index of its first 2xx
  requests.forEach((r, i) => {
    if (accepted(r) && !acceptedAt.has(eventOf(r).id)) acceptedAt.set(eventOf(r).id, i);
  });
  const byKey = new Map<string, NotificationEvent[]>();
  for (const r of requests) {
    const e = eventOf(r);
    const list = byKey.get(keyOf(e)) ?? [];
    if (!list.some((x) => x.id === e.id)) list.push(e);
    byKey.set(keyOf(e), list);
  }
  requests.forEach((r, i) => {
    const e = eventOf(r);
    for (const earlier of byKey.get(keyOf(e)) ?? []) {
      if ((earlier.auditSeq ?? 0) >= (e.auditSeq ?? 0)) continue;
      const at = acceptedAt.get(earlier.id);
      expect(at !== undefined && at < i, `request ${r.n} (${e.id} ${e.type}) made before ${earlier.id} (${earlier.type}) of ${keyOf(e)} was accepted`).toBe(true);
    }
  });
}

describe('webhooks from a real server', { timeout: 180_000 }, () => {
  it('a server killed with kill -9 mid-delivery delivers every event after restart, in order per instance, signed', async () => {
    // Two deliveries are answered; every later one is held open (in flight) until the server dies.
    let mode: 'hold' | 'ok' = 'hold';
    receiver = await WebhookReceiver.start((n): Answer => (mode === 'ok' || n <= 2 ? 200 : 'hang'));
    // Two deliveries in flight at most, and a timeout beyond the test: held requests stay in flight.
    s = await serverWith(receiver.url, 3, { maxConcurrency: 2, timeout: '60s' });
    await s.start();
    await waitFor('3 instances', () => s!.instances(), (list) => list.filter((i) => i.status !== 'deleted').length === 3, 45_000);
    // Scale down: a groupResized event, and a drain started, acknowledged and a delete per victim.
    const scaled = await s.api('PUT', '/v1/groups/default/web/size', { size: 1 });
    expect(scaled.status).toBe(200);
    await waitFor('2 victims deleted', () => s!.api<InstanceRow[]>('GET', '/v1/instances?tenant=default&group=web&includeDeleted=true'), (r) => r.body.filter((i) => i.status === 'deleted').length >= 2, 60_000);
    await receiver.until(() => receiver!.held === 2);
    const before = await auditEventIds(s);
    const atKill = await endpoint(s);
    const requestedBeforeKill = new Set(receiver.requests.map((r) => eventOf(r).id));
    // Mid-delivery: some delivered, two in flight, and more never sent yet.
    expect(receiver.accepted()).toHaveLength(2);
    expect(atKill.pending).toBe(before.length - 2);
    expect(before.filter((id) => !requestedBeforeKill.has(id)).length).toBeGreaterThan(0);
    const inFlightAtKill = receiver.requests.filter((r) => r.answered === 'hang').map((r) => eventOf(r).id);
    expect(inFlightAtKill).toHaveLength(2);

    await s.kill9();
    receiver.dropHanging();
    mode = 'ok';
    await s.start();

    const delivered = (): Set<string> => new Set(receiver!.accepted().map((r) => eventOf(r).id));
    await waitFor('every audited event delivered, nothing pending', async () => ({ ids: await auditEventIds(s!), hook: await endpoint(s!) }), ({ ids, hook }) => hook.pending === 0 && ids.every((id) => delivered().has(id)), 60_000);
    const after = await auditEventIds(s);
    expect(after.slice(0, before.length)).toEqual(before);
    const got = delivered();
    for (const id of after) expect(got.has(id), `${id} delivered`).toBe(true);
    for (const id of inFlightAtKill) expect(got.has(id), `${id}, in flight at the kill, delivered`).toBe(true);
    expect((await endpoint(s)).dead).toBe(0);
    expectSigned(receiver.requests);
    expectOrderedPerKey(receiver.requests);
    // Every kind of event the start and the scale-down caused arrived (their order: expectOrderedPerKey).
    const types = receiver.accepted().map((r) => eventOf(r).type);
    expect(new Set(types)).toEqual(new Set(['instanceCreated', 'groupResized', 'drainStarted', 'drainAcked', 'instanceDeleted']));
  });

  it('a receiver that fails for a while gets every event, in order per instance, once it recovers', async () => {
    // Failing: alternately an HTTP 503 and a reset connection. Enough failures in a row open the
    // endpoint's circuit breaker; the recovered receiver then gets everything through its probe.
    let failing = true;
    receiver = await WebhookReceiver.start((n): Answer => (failing ? (n % 2 === 0 ? 'reset' : 503) : 200));
    s = await serverWith(receiver.url, 2, { maxConcurrency: 4, timeout: '5s' });
    await s.start();
    await waitFor('2 instances', () => s!.instances(), (list) => list.filter((i) => i.status !== 'deleted').length === 2, 45_000);
    expect((await s.api('PUT', '/v1/groups/default/web/size', { size: 1 })).status).toBe(200);
    await waitFor('victim deleted', () => s!.api<InstanceRow[]>('GET', '/v1/instances?tenant=default&group=web&includeDeleted=true'), (r) => r.body.some((i) => i.status === 'deleted'), 60_000);
    // Failed for a while: retries (a second attempt of some event) and an open breaker.
    await waitFor('retried', () => receiver!.requests, (list) => list.some((r) => Number(r.headers['drover-delivery-attempt']) >= 2), 30_000);
    await waitFor('breaker open', async () => (await s!.api<Array<{ name: string; breaker: string }>>('GET', '/v1/notifications')).body, (list) => list.some((e) => e.breaker === 'open'), 30_000);
    const failedIds = new Set(receiver.requests.map((r) => eventOf(r).id));
    expect(receiver.accepted()).toHaveLength(0);
    failing = false;

    const delivered = (): Set<string> => new Set(receiver!.accepted().map((r) => eventOf(r).id));
    // The breaker's first cool-off is 30 s.
    await waitFor('every audited event delivered, nothing pending', async () => ({ ids: await auditEventIds(s!), hook: await endpoint(s!) }), ({ ids, hook }) => hook.pending === 0 && ids.every((id) => delivered().has(id)), 90_000);
    const ids = await auditEventIds(s);
    const got = delivered();
    for (const id of ids) expect(got.has(id), `${id} delivered`).toBe(true);
    for (const id of failedIds) expect(got.has(id), `${id}, failed before, delivered`).toBe(true);
    expect((await endpoint(s)).dead).toBe(0);
    expectSigned(receiver.requests);
    expectOrderedPerKey(receiver.requests);
    const types = new Set(receiver.accepted().map((r) => eventOf(r).type));
    for (const t of ['instanceCreated', 'groupResized', 'drainStarted', 'drainAcked', 'instanceDeleted']) expect(types.has(t as NotificationEvent['type']), t).toBe(true);
  });

  it("an instance's later events wait while its earlier one is retried: a refused drainStarted comes before its ack and delete", async () => {
    // The receiver refuses each drainStarted three times (retried 1 s, 2 s, then 4 s later); the
    // instance's drainAcked (its drain command takes 1 s) and delete exist before it goes through.
    const refusals = new Map<string, number>();
    receiver = await WebhookReceiver.start((_n, body): Answer => {
      const e = JSON.parse(body) as NotificationEvent;
      if (e.type !== 'drainStarted') return 200;
      const n = refusals.get(e.id) ?? 0;
      if (n >= 3) return 200;
      refusals.set(e.id, n + 1);
      return 503;
    });
    s = await serverWith(receiver.url, 2, { maxConcurrency: 4, timeout: '5s' });
    await s.start();
    await waitFor('2 instances', () => s!.instances(), (list) => list.filter((i) => i.status !== 'deleted').length === 2, 45_000);
    expect((await s.api('PUT', '/v1/groups/default/web/size', { size: 1 })).status).toBe(200);
    const victim = await waitFor('victim deleted', () => s!.api<InstanceRow[]>('GET', '/v1/instances?tenant=default&group=web&includeDeleted=true'), (r) => r.body.some((i) => i.status === 'deleted'), 60_000);
    const victimId = victim.body.find((i) => i.status === 'deleted')!.id;
    const delivered = (): Set<string> => new Set(receiver!.accepted().map((r) => eventOf(r).id));
    await waitFor('every audited event delivered, nothing pending', async () => ({ ids: await auditEventIds(s!), hook: await endpoint(s!) }), ({ ids, hook }) => hook.pending === 0 && ids.every((id) => delivered().has(id)), 60_000);
    // The victim's trail: drainStarted refused three times, then accepted; only then its ack and delete.
    const trail = receiver.requests.filter((r) => eventOf(r).instanceId === victimId && eventOf(r).type !== 'instanceCreated').map((r) => `${eventOf(r).type}:${String(r.answered)}`);
    expect(trail).toEqual(['drainStarted:503', 'drainStarted:503', 'drainStarted:503', 'drainStarted:200', 'drainAcked:200', 'instanceDeleted:200']);
    // The ack existed before the drainStarted went through: it waited, it was not merely later.
    const ackSeq = eventOf(receiver.requests.find((r) => eventOf(r).instanceId === victimId && eventOf(r).type === 'drainAcked')!).auditSeq!;
    const startedAccepted = receiver.requests.find((r) => eventOf(r).instanceId === victimId && eventOf(r).type === 'drainStarted' && accepted(r))!;
    const audit = (await s.api<Array<AuditRow & { at: string }>>('GET', `/v1/audit?instance=${victimId}`)).body;
    const ackAt = Date.parse(audit.find((a) => a.seq === ackSeq)!.at);
    expect(ackAt).toBeLessThan(startedAccepted.receivedAtMs);
    expectSigned(receiver.requests);
    expectOrderedPerKey(receiver.requests);
  });
});
