/**
 * Bounds everywhere, and a bad file that loses nothing: durations, pages, the event stream, 500s,
 * empty configs and groups that vanish from the config for a moment.
 */
import { statSync } from 'node:fs';
import { join } from 'node:path';
import { pino } from 'pino';
import { stringify } from 'yaml';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { startDroverServer } from '../../src/app/drover-server.js';
import { ApiClient } from '../../src/cli/client.js';
import { openLocalDb } from '../../src/store/index.js';
import { EventStreamReader } from '../helpers/event-stream.js';
import { TestServer } from '../helpers/server-harness.js';

const TOKEN = 'limits-token-0123456789';
let t: TestServer | undefined;
afterEach(async () => {
  vi.restoreAllMocks();
  await t?.close();
  t = undefined;
});

const QUIET = { healthCheckInterval: '1h', startupTimeout: '2h', resyncInterval: '0s' };

describe('durations an operator may ask for', () => {
  it('refuses a drain extension or a protection past 30d, or one that is no date at all, with 400 and changes nothing', async () => {
    t = await new TestServer({ token: TOKEN, shard: QUIET }).start();
    await t.settle();
    const [inst] = t.server.db.listInstances();
    const id = inst!.id;
    for (const by of ['99999999999d', '10000000d', '31d', '0s', 'soon']) {
      const res = await t.api<{ error: string }>('POST', `/v1/instances/${id}/drain-extend`, { by });
      expect(res.status, by).toBe(400);
    }
    for (const body of [{ for: '31d' }, { for: '99999999999d' }, { until: '+275760-09-13T00:00:00.001Z' }, { until: '2999-01-01T00:00:00Z' }]) {
      const res = await t.api<{ error: string }>('PUT', `/v1/instances/${id}/protection`, body);
      expect(res.status, JSON.stringify(body)).toBe(400);
    }
    expect(t.server.db.listAudit({ instanceId: id }).filter((a) => a.actor.startsWith('operator'))).toEqual([]);
  });

  it('bounds a drain that sets no maxDrainTimeout at 24h after it began', async () => {
    t = await new TestServer({ token: TOKEN, shard: { ...QUIET }, groups: { default: { web: { size: 2, template: 'web', drainTimeout: '1m' } } } }).start();
    await t.settle();
    expect((await t.api('PUT', '/v1/groups/default/web/size', { size: 1 })).status).toBe(200);
    await t.settle();
    const draining = t.server.db.listInstances({ status: 'draining' })[0]!;
    const res = await t.api<{ drainDeadline: string; capped: boolean }>('POST', `/v1/instances/${draining.id}/drain-extend`, { by: '30d' });
    expect(res.status).toBe(200);
    expect(res.body.capped).toBe(true);
    expect(Date.parse(res.body.drainDeadline)).toBe(draining.drainStartedAt!.getTime() + 24 * 3_600_000);
    expect(t.server.db.listAudit({ instanceId: draining.id }).find((a) => a.action === 'drainExtended')?.detail).toMatch(/capped by the default maxDrainTimeout \(24h\)/);
  });
});

describe('pages', () => {
  it('pages instances with a Link to the next page, and the CLI follows every page', async () => {
    t = await new TestServer({ token: TOKEN, shard: QUIET, groups: { default: { web: { size: 5, template: 'web' } } } }).start();
    await t.settle();
    const first = await t.api<Array<{ id: string }>>('GET', '/v1/instances?limit=2');
    expect(first.body).toHaveLength(2);
    const link = first.headers.get('link');
    expect(link).toMatch(/^<\/v1\/instances\?limit=2&after=[\w-]+>; rel="next"$/);
    const seen = [...first.body.map((i) => i.id)];
    let next: string | null = /<([^>]+)>/.exec(link ?? '')?.[1] ?? null;
    while (next) {
      const page = await t.api<Array<{ id: string }>>('GET', next);
      seen.push(...page.body.map((i) => i.id));
      next = /<([^>]+)>/.exec(page.headers.get('link') ?? '')?.[1] ?? null;
    }
    expect(seen.sort()).toEqual(t.server.db.listInstances().map((i) => i.id).sort());
    const client = new ApiClient({ server: t.url, token: TOKEN });
    expect((await client.requestAllPages<{ id: string }>('/v1/instances?limit=2')).map((i) => i.id).sort()).toEqual(seen.sort());
    expect((await t.api('GET', '/v1/instances?limit=0')).status).toBe(400);
    expect((await t.api('GET', '/v1/instances?after=garbage')).status).toBe(400);
  });

  it('pages the audit back with before= and forward with after=', async () => {
    t = await new TestServer({ token: TOKEN, shard: QUIET }).start();
    await t.settle();
    const all = t.server.db.listAudit();
    expect(all.length).toBeGreaterThanOrEqual(4);
    const newest = await t.api<Array<{ seq: number }>>('GET', '/v1/audit?limit=2');
    expect(newest.body.map((e) => e.seq)).toEqual(all.slice(-2).map((e) => e.seq));
    expect(newest.headers.get('link')).toBe(`</v1/audit?limit=2&before=${all.at(-2)!.seq}>; rel="prev"`);
    const forward = await t.api<Array<{ seq: number }>>('GET', `/v1/audit?limit=2&after=${all[0]!.seq}`);
    expect(forward.body.map((e) => e.seq)).toEqual(all.slice(1, 3).map((e) => e.seq));
    expect(forward.headers.get('link')).toBe(`</v1/audit?limit=2&after=${all[2]!.seq}>; rel="next"`);
    expect((await t.api('GET', '/v1/audit?after=1&before=5')).status).toBe(400);
  });
});

describe('the event stream', () => {
  it('refuses clients past maxEventSubscribers with 503, and takes one again once another leaves', async () => {
    t = await new TestServer({ shard: QUIET, server: { maxEventSubscribers: 2 } }).start();
    const a = await EventStreamReader.open(`${t.url}/v1/events`);
    const b = await EventStreamReader.open(`${t.url}/v1/events`);
    const third = await fetch(`${t.url}/v1/events`);
    expect(third.status).toBe(503);
    expect(await third.json()).toEqual({ error: expect.stringMatching(/has 2 clients already/) });
    await a.close();
    await expect.poll(async () => {
      const res = await fetch(`${t!.url}/v1/events`);
      const status = res.status;
      await res.body?.cancel();
      return status;
    }).toBe(200);
    await b.close();
  });

  it('tells a client that missed more than it can replay to start afresh, instead of replaying it all', async () => {
    t = await new TestServer({ shard: QUIET }).start();
    await t.settle();
    const db = t.server.db;
    const from = db.listAudit().at(-1)!.seq;
    db.transaction(() => {
      for (let k = 0; k < 1_005; k++) db.appendAudit({ at: new Date(), tenant: 'default', group: 'web', instanceId: null, action: 'scale', reason: 'operator', detail: `filler ${k}` });
    });
    const missed = await EventStreamReader.open(`${t.url}/v1/events`, { 'Last-Event-ID': String(from) });
    await missed.next((e) => e.type === 'reset');
    expect(missed.ofType('audit')).toEqual([]);
    await missed.close();
    const few = await EventStreamReader.open(`${t.url}/v1/events`, { 'Last-Event-ID': String(db.listAudit().at(-3)!.seq) });
    await expect.poll(() => few.ofType('audit').length).toBe(2);
    await few.close();
  });
});

describe('errors', () => {
  it('answers a 500 without the detail, which goes to the log with the request id', async () => {
    const lines: string[] = [];
    const logger = pino({ level: 'error' }, { write: (line: string) => lines.push(line) });
    t = await new TestServer({ shard: QUIET, logger }).start();
    vi.spyOn(t.server.reconciler, 'plan').mockImplementation(() => {
      throw new Error('reading /srv/secret/place: EACCES');
    });
    const res = await t.api<{ error: string }>('GET', '/v1/groups');
    expect(res.status).toBe(500);
    expect(res.body.error).toMatch(/^internal error \(request [\w-]+\); the details are in the server's log$/);
    expect(JSON.stringify(res.body)).not.toMatch(/secret|EACCES/);
    const requestId = /request ([\w-]+)/.exec(res.body.error)![1];
    expect(lines.some((l) => l.includes('/srv/secret/place') && l.includes(`"requestId":"${requestId}"`))).toBe(true);
  });
});

describe('a bad config file loses nothing', () => {
  it('keeps the config in force when the file is emptied, and says so on /healthz and the event stream', async () => {
    t = await new TestServer({ token: TOKEN, shard: QUIET }).start();
    await t.settle();
    const events = await EventStreamReader.open(`${t.url}/v1/events`, { Authorization: `Bearer ${TOKEN}` });
    for (const text of ['', '   \n', '---\n', 'null\n']) {
      t.writeRawConfig(text);
      await expect.poll(async () => (await t!.api<{ configError: string | null }>('GET', '/healthz')).body.configError, { timeout: 5_000 }).toMatch(/the config is empty/);
      t.writeConfig();
      await expect.poll(async () => (await t!.api<{ configError: string | null }>('GET', '/healthz')).body.configError, { timeout: 5_000 }).toBeNull();
    }
    await events.next((e) => e.type === 'config' && (e.data as { ok: boolean }).ok === false);
    await events.close();
    // Without a token /healthz says only that the file was rejected.
    t.writeRawConfig('');
    await expect.poll(async () => ((await (await fetch(`${t!.url}/healthz`)).json()) as { configError: string | null }).configError, { timeout: 5_000 }).toMatch(/rejected/);
    expect(t.server.config().groups.default?.web?.size).toBe(2);
    await t.settle();
    const instances = t.server.db.listInstances();
    expect(instances).toHaveLength(2);
    expect(instances.every((i) => i.status === 'creating' || i.status === 'running')).toBe(true);
    expect(t.server.db.listAudit().filter((a) => a.action === 'drain' || a.action === 'delete')).toEqual([]);
  });

  it('shows a group cut from the file as pending removal, and a file that brings it back loses nothing', async () => {
    const groups = { default: { web: { size: 2, template: 'web' }, api: { size: 1, template: 'web' } } };
    t = await new TestServer({ token: TOKEN, shard: QUIET, groups }).start();
    await t.settle();
    t.writeConfig({ groups: { default: { web: { size: 2, template: 'web' } } } });
    await expect
      .poll(async () => (await t!.api<{ blocked: Array<{ code: string; until: string }> }>('GET', '/v1/groups/default/api')).body.blocked?.map((b) => b.code), { timeout: 5_000 })
      .toContain('RemovalPending');
    t.writeConfig({ groups });
    await expect.poll(() => t!.server.db.listAudit({ tenant: 'default', group: 'api' }).map((a) => a.action), { timeout: 5_000 }).toContain('removalCancelled');
    await t.settle();
    expect(t.server.db.listAudit().filter((a) => a.action === 'drain' || a.action === 'delete')).toEqual([]);
  });

  it('refuses to start on an empty file, a config without groups, or an open API beyond loopback', async () => {
    t = new TestServer({ shard: QUIET });
    const start = (): Promise<unknown> => startDroverServer({ configPath: t!.configPath, logger: pino({ level: 'silent' }), provider: t!.provider });
    t.writeRawConfig('\n');
    await expect(start()).rejects.toThrow(/the config is empty/);
    t.writeRawConfig(stringify({ ...t.configObject(), groups: {} }));
    await expect(start()).rejects.toThrow(/groups: lists no group/);
    t.writeRawConfig(stringify({ ...t.configObject(), server: { listen: '0.0.0.0:0', dataDir: join(t.dir, 'data') } }));
    await expect(start()).rejects.toThrow(/server\.listen: listens on 0\.0\.0\.0, beyond this machine, with no API token/);
    t.writeRawConfig(stringify({ ...t.configObject(), server: { listen: '127.0.0.1:0', dataDir: join(t.dir, 'data'), token: 'short' } }));
    await expect(start()).rejects.toThrow(/server\.token: must be at least 16 characters/);
  });
});

describe('what the server keeps on disk', () => {
  it('keeps its data folder 0700 and its database 0600, and drops audit and deleted instances past the retention at start', async () => {
    t = await new TestServer({ shard: QUIET }).start();
    await t.settle();
    const data = join(t.dir, 'data');
    expect(statSync(data).mode & 0o777).toBe(0o700);
    expect(statSync(join(data, 'drover.db')).mode & 0o777).toBe(0o600);
    await t.stop();
    const db = openLocalDb(join(data, 'drover.db'));
    const old = new Date(Date.now() - 31 * 86_400_000);
    db.appendAudit({ at: old, tenant: 'default', group: 'web', instanceId: 'i-old', action: 'deleted', reason: 'scaleDown' });
    db.insertInstance({ id: 'i-old', tenant: 'default', group: 'web', templateName: 'web', templateHash: 'x', createReason: 'scaleUp', createdAt: old, status: 'deleted', deletedAt: old });
    db.close();
    await t.start();
    expect(t.server.db.getInstance('i-old')).toBeNull();
    expect(t.server.db.listAudit({ instanceId: 'i-old' })).toEqual([]);
    expect(t.server.db.listAudit().length).toBeGreaterThan(0);
  });
});
