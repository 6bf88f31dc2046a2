/**
 * `drover notifications list | log | test | redeliver`: the built CLI against a real server that
 * delivers to a real webhook receiver on loopback. Dead letters come from real failed deliveries
 * (the receiver answers 500) on a server whose clock the test moves past the endpoint's retryFor.
 */
import { spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, beforeAll, describe, expect, it } from 'vitest';
import { ManualClock } from '../../src/clock/index.js';
import { verifySignature, type NotificationEvent } from '../../src/notifications/index.js';
import type { DeliveryView, NotificationEndpointView } from '../../src/server/notification-routes.js';
import { CLI, requireBuild } from '../e2e/process-harness.js';
import { TestServer } from '../helpers/server-harness.js';
import { WebhookReceiver } from '../helpers/webhook-receiver.js';
import { runCli } from './run-cli.js';

const ADMIN = 'admin-token-0123456789';
const TEAM_A = 'team-a-token-0123456789';
const SECRET = 'webhook-secret-0123456789';
const sha256 = (text: string): string => createHash('sha256').update(text).digest('hex');
const QUIET = { healthCheckInterval: '1h', startupTimeout: '2h', resyncInterval: '0s' };

let t: TestServer | undefined;
let receiver: WebhookReceiver | undefined;
beforeAll(() => requireBuild());
afterEach(async () => {
  await t?.close();
  await receiver?.close();
  t = undefined;
  receiver = undefined;
});

/** A server with one endpoint, `ops`, for instanceCreated events, delivering to `rx`. */
async function start(rx: WebhookReceiver, clock?: ManualClock): Promise<TestServer> {
  const server = new TestServer({ token: ADMIN, shard: QUIET, ...(clock ? { clock } : {}) });
  const secretFile = join(server.dir, 'hook.secret');
  writeFileSync(secretFile, `${SECRET}\n`, { mode: 0o600 });
  server.writeConfig({
    server: { tokens: [{ name: 'team-a', sha256: sha256(TEAM_A), role: 'operator', tenants: ['a'] }] },
    // The longest timeout: the test moves the clock in steps shorter than it, so an attempt in
    // flight is never cut as a timeout by the clock's jump.
    notifications: [{ name: 'ops', url: rx.url, secretFile, events: ['instanceCreated'], timeout: '60s', retryFor: '1m' }],
  });
  await server.start();
  return server;
}

const eventOf = (body: string): NotificationEvent => JSON.parse(body) as NotificationEvent;

describe('drover notifications', { timeout: 60_000 }, () => {
  it('lists endpoints and the delivery log as tables and as the API’s JSON, and refuses bad options with exit 2', async () => {
    receiver = await WebhookReceiver.start();
    t = await start(receiver);
    const env = { DROVER_SERVER: t.url, DROVER_TOKEN: ADMIN };
    await expect.poll(() => t!.server.db.outbox.list({ state: 'delivered' }).length, { timeout: 20_000 }).toBe(2);

    const listed = await runCli(['notifications', 'list'], env);
    expect(listed.status, listed.stderr).toBe(0);
    const origin = new URL(receiver.url).origin;
    expect(listed.stdout).toMatch(/^NAME\s+URL\s+FORMAT\s+PENDING\s+OLDEST-PENDING\s+DEAD\s+BREAKER\n/);
    expect(listed.stdout).toMatch(new RegExp(`\\nops\\s+${origin.replace(/[.]/g, '\\.')}/…\\s+json\\s+0\\s+-\\s+0\\s+closed\\n$`));
    const listedJson = await runCli(['notifications', 'list', '-o', 'json'], env);
    expect(JSON.parse(listedJson.stdout)).toEqual((await t.api<NotificationEndpointView[]>('GET', '/v1/notifications')).body);

    const log = await runCli(['notifications', 'log'], env);
    expect(log.status, log.stderr).toBe(0);
    const lines = log.stdout.trimEnd().split('\n');
    expect(lines[0]).toMatch(/^ID\s+TIME\s+ENDPOINT\s+EVENT\s+STATE\s+ATTEMPTS\s+LAST-STATUS\s+LATENCY$/);
    expect(lines.slice(1)).toHaveLength(2);
    for (const line of lines.slice(1)) expect(line).toMatch(/^\d+\s+\d{4}-\d\d-\d\dT[\d:.]+Z\s+ops\s+instanceCreated\s+delivered\s+1\s+200\s+\d+(ms|s)$/);
    const ids = lines.slice(1).map((l) => Number(l.split(/\s+/)[0]));
    expect(ids[0]).toBeGreaterThan(ids[1]!);
    const one = await runCli(['notifications', 'log', '--endpoint', 'ops', '--state', 'delivered', '--limit', '1', '-o', 'json'], env);
    expect(JSON.parse(one.stdout)).toEqual((await t.api<DeliveryView[]>('GET', '/v1/notifications/deliveries?endpoint=ops&state=delivered&limit=1')).body);
    expect(await runCli(['notifications', 'log', '--state', 'dead'], env)).toMatchObject({ status: 0, stdout: 'no deliveries\n' });

    for (const [args, message] of [
      [['--state', 'lost'], /--state: expected one of pending, delivered, dead, got "lost"/],
      [['--limit', '0'], /--limit: expected a whole number from 1 to 1000, got "0"/],
      [['--limit', '5000'], /--limit: expected a whole number from 1 to 1000/],
      [['--endpoint', 'a b'], /--endpoint: expected an endpoint name, got "a b"/],
    ] as const) {
      const bad = await runCli(['notifications', 'log', ...args], env);
      expect(bad.status, args.join(' ')).toBe(2);
      expect(bad.stderr).toMatch(message);
    }
  });

  it('holds a tenant-scoped token to the server’s refusal (exit 1, HTTP 403) for the endpoint list and test events', async () => {
    receiver = await WebhookReceiver.start();
    t = await start(receiver);
    const env = { DROVER_SERVER: t.url, DROVER_TOKEN: TEAM_A };
    for (const args of [['notifications', 'list'], ['notifications', 'test', 'ops'], ['notifications', 'redeliver', '--endpoint', 'ops']]) {
      const res = await runCli(args, env);
      expect(res.status, args.join(' ')).toBe(1);
      expect(res.stderr).toMatch(/notification endpoints serve every tenant; this needs a token not limited to tenants \(HTTP 403\)/);
    }
    expect(t.server.db.outbox.list().filter((r) => r.eventType === 'test')).toEqual([]);
  });

  it('sends a signed test event and, with --wait, reports its delivery; an unknown endpoint exits 1', async () => {
    receiver = await WebhookReceiver.start();
    t = await start(receiver);
    const env = { DROVER_SERVER: t.url, DROVER_TOKEN: ADMIN };
    const sent = await runCli(['notifications', 'test', 'ops', '--wait', '--timeout', '30s'], env);
    expect(sent.status, sent.stderr).toBe(0);
    expect(sent.stdout).toMatch(/^test event (ev-test-test-[0-9a-f-]+) delivered to ops \(HTTP 200\) in \d+(ms|s), after 1 attempt\n$/);
    const eventId = /(ev-test-test-[0-9a-f-]+)/.exec(sent.stdout)![1]!;
    const got = receiver.accepted().find((r) => r.headers['drover-event-id'] === eventId);
    expect(got && eventOf(got.body)).toMatchObject({ id: eventId, type: 'test', actor: expect.stringMatching(/\S/) });
    expect(verifySignature(String(got!.headers['drover-signature']), got!.body, [SECRET], Math.floor(Date.now() / 1000))).toMatchObject({ ok: true });

    const queued = await runCli(['notifications', 'test', 'ops', '-o', 'json'], env);
    expect(queued.status, queued.stderr).toBe(0);
    expect(JSON.parse(queued.stdout)).toEqual({ endpoint: 'ops', eventId: expect.stringMatching(/^ev-test-test-/) });

    const unknown = await runCli(['notifications', 'test', 'nope'], env);
    expect(unknown.status).toBe(1);
    expect(unknown.stderr).toContain('notification endpoint nope is not configured (HTTP 404)');
    expect((await runCli(['notifications', 'test', 'no/pe'], env)).status).toBe(2);
    expect((await runCli(['notifications', 'test', 'ops', '--wait', '--timeout', 'soon'], env)).status).toBe(2);
  });

  it('with --watch, prints deliveries as they appear and change, until stopped', async () => {
    receiver = await WebhookReceiver.start();
    t = await start(receiver);
    await expect.poll(() => t!.server.db.outbox.list({ state: 'delivered' }).length, { timeout: 20_000 }).toBe(2);
    const child = spawn(process.execPath, [CLI, 'notifications', 'log', '--watch', '--endpoint', 'ops'], { env: { ...process.env, DROVER_SERVER: t.url, DROVER_TOKEN: ADMIN } });
    let stdout = '';
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    const exited = new Promise<number | null>((resolve) => child.on('close', resolve));
    try {
      await expect.poll(() => stdout.split('\n').filter((l) => /\binstanceCreated\b/.test(l)).length, { timeout: 10_000 }).toBe(2);
      expect(stdout).toMatch(/^ID\s+TIME\s+ENDPOINT\s+EVENT\s+STATE\s+ATTEMPTS\s+LAST-STATUS\s+LATENCY\n/);
      const sent = await t.api<{ eventId: string }>('POST', '/v1/notifications/ops/test');
      expect(sent.status).toBe(202);
      const row = (): string | undefined => stdout.split('\n').find((l) => /^\d+\s+\S+\s+ops\s+test\s+delivered\s+1\s+200\s/.test(l));
      await expect.poll(row, { timeout: 10_000 }).toBeDefined();
      // The two deliveries it began with are not printed again: they did not change.
      expect(stdout.split('\n').filter((l) => /\binstanceCreated\b/.test(l))).toHaveLength(2);
    } finally {
      child.kill('SIGTERM');
    }
    await exited;
  });

  it('shows dead letters and redelivers them by id or for a whole endpoint; refusals exit 1, bad use exits 2, a given-up test exits 1', async () => {
    receiver = await WebhookReceiver.start(() => 500);
    const clock = new ManualClock(new Date('2026-01-05T10:00:00Z'));
    t = await start(receiver, clock);
    const env = { DROVER_SERVER: t.url, DROVER_TOKEN: ADMIN };
    const server = t;
    const rows = (state: 'pending' | 'delivered' | 'dead') => server.server.db.outbox.list({ endpoint: 'ops', state });
    // Time moves in steps shorter than the endpoint's timeout; each look moves it once more.
    const advancing = <T>(read: () => T) => async (): Promise<T> => {
      await clock.advance(5_000);
      return read();
    };

    // Both instanceCreated events fail for the endpoint's retryFor (1m), then are dead letters.
    await expect.poll(advancing(() => rows('dead').length), { timeout: 30_000 }).toBe(2);
    expect(receiver.requests.length).toBeGreaterThanOrEqual(4);
    const dead = await runCli(['notifications', 'log', '--state', 'dead'], env);
    expect(dead.status, dead.stderr).toBe(0);
    const deadLines = dead.stdout.trimEnd().split('\n').slice(1);
    expect(deadLines).toHaveLength(2);
    for (const line of deadLines) expect(line).toMatch(/^\d+\s+\S+\s+ops\s+instanceCreated\s+dead\s+([2-9]|\d\d+)\s+500\s+-$/);
    const wide = await runCli(['notifications', 'log', '--state', 'dead', '-o', 'wide'], env);
    expect(wide.stdout).toMatch(/EVENT-ID\s+TENANT\s+NEXT-ATTEMPT\s+LAST-ERROR\n/);
    expect(wide.stdout).toMatch(/ev-test-\d+\s+default\s+-\s+the receiver answered HTTP 500\n/);
    const listed = await runCli(['notifications', 'list'], env);
    expect(listed.stdout).toMatch(/\nops\s+\S+\s+json\s+0\s+-\s+2\s+(closed|open until \S+|halfOpen)\n$/);

    // A test event that keeps failing: --wait gives up waiting (exit 4); it stays pending.
    const waited = await runCli(['notifications', 'test', 'ops', '--wait', '--timeout', '2s'], env);
    expect(waited.status).toBe(4);
    expect(waited.stderr).toMatch(/drover: test event ev-test-test-\S+ to ops not delivered within 2s \(still pending/);
    const [pendingTest] = rows('pending');
    expect(pendingTest?.eventType).toBe('test');

    receiver.answer = () => 200;
    const [first, second] = rows('dead');
    const mixed = await runCli(['notifications', 'redeliver', String(first!.id), String(pendingTest!.id), '999999'], env);
    expect(mixed.status).toBe(1);
    expect(mixed.stdout).toBe(`delivery ${first!.id} (${first!.eventId} to ops) back to pending\n`);
    expect(mixed.stderr).toContain(`delivery ${pendingTest!.id} is not a dead letter (state pending) (HTTP 409)`);
    expect(mixed.stderr).toContain('delivery 999999 not found (HTTP 404)');
    expect(mixed.stderr).toContain('2 of 3 deliveries not redelivered');
    await expect.poll(advancing(() => server.server.db.outbox.get(first!.id)?.state), { timeout: 30_000 }).toBe('delivered');
    expect(receiver.accepted().map((r) => r.headers['drover-event-id'])).toContain(first!.eventId);
    expect(server.server.db.outbox.get(second!.id)?.state).toBe('dead');

    const bulk = await runCli(['notifications', 'redeliver', '--endpoint', 'ops'], env);
    expect(bulk.status, bulk.stderr).toBe(0);
    expect(bulk.stdout).toBe('1 dead letter of ops back to pending\n');
    await expect.poll(advancing(() => server.server.db.outbox.get(second!.id)?.state), { timeout: 30_000 }).toBe('delivered');
    const none = await runCli(['notifications', 'redeliver', '--endpoint', 'ops', '-o', 'json'], env);
    expect(JSON.parse(none.stdout)).toEqual({ endpoint: 'ops', redelivered: 0, at: expect.any(String) });
    const unknown = await runCli(['notifications', 'redeliver', '--endpoint', 'nope'], env);
    expect(unknown.status).toBe(1);
    expect(unknown.stderr).toContain('notification endpoint nope is not configured (HTTP 404)');

    for (const args of [[], ['1', '--endpoint', 'ops'], ['abc']]) {
      const bad = await runCli(['notifications', 'redeliver', ...args], env);
      expect(bad.status, args.join(' ')).toBe(2);
      expect(bad.stderr).toMatch(/redeliver: (give delivery ids|expected delivery ids)/);
    }

    // A test event given up while --wait follows it: exit 1, with the receiver's answer.
    receiver.answer = () => 500;
    const following = runCli(['notifications', 'test', 'ops', '--wait', '--timeout', '60s'], env);
    await expect.poll(() => server.server.db.outbox.list({ endpoint: 'ops' }).filter((r) => r.eventType === 'test').length, { timeout: 10_000 }).toBe(2);
    await expect.poll(advancing(() => rows('dead').filter((r) => r.eventType === 'test').length), { timeout: 30_000 }).toBe(1);
    const givenUp = await following;
    expect(givenUp.status).toBe(1);
    expect(givenUp.stderr).toMatch(/drover: test event ev-test-test-\S+ to ops was given up after \d+ attempts: the receiver answered HTTP 500/);
  });
});
