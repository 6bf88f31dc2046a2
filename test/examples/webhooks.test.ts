/**
 * The webhook examples: examples/webhooks.yaml is a config Drover accepts (its commented endpoint
 * too), and examples/webhook-receiver.ts — the verification snippet the notifications README
 * shows — accepts what a real Drover server sends and refuses forged, stale and unsigned
 * deliveries, handing each event on once.
 */
import { readFileSync, writeFileSync } from 'node:fs';
import type { Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { parse } from 'yaml';
import { startReceiver, verifyDroverSignature, type DroverEvent } from '../../examples/webhook-receiver.js';
import { parseConfigText } from '../../src/config/index.js';
import { signatureHeader } from '../../src/notifications/index.js';
import { TestServer } from '../helpers/server-harness.js';

const ROOT = join(import.meta.dirname, '..', '..');
const CONFIG = readFileSync(join(ROOT, 'examples/webhooks.yaml'), 'utf8');
const SECRET = 'example-secret-0123456789';
const OLD_SECRET = 'previous-secret-0123456789';

let t: TestServer | undefined;
let receiver: Server | undefined;
afterEach(async () => {
  await t?.close();
  t = undefined;
  receiver?.closeAllConnections();
  await new Promise((resolve) => (receiver ? receiver.close(resolve) : resolve(undefined)));
  receiver = undefined;
});

describe('examples/webhooks.yaml', () => {
  it('is a config Drover accepts, with one endpoint for the example receiver', () => {
    const config = parseConfigText(CONFIG, 'webhooks.yaml');
    expect(config.notifications).toEqual([
      expect.objectContaining({ name: 'receiver', url: 'http://127.0.0.1:8080/drover', secretFile: './.drover/hook.secret', format: 'json', timeout: 10_000, retryFor: 86_400_000, maxConcurrency: 4 }),
    ]);
  });

  it('has a commented Slack endpoint that is valid once uncommented', () => {
    const lines = CONFIG.split('\n');
    const from = lines.findIndex((l) => l.includes('# - name: ops-chat'));
    expect(from).toBeGreaterThan(0);
    const uncommented = lines.map((l, i) => (i >= from && l.startsWith('  # ') ? `  ${l.slice(4)}` : l)).join('\n');
    const config = parseConfigText(uncommented, 'webhooks.yaml');
    expect(config.notifications.map((n) => n.name)).toEqual(['receiver', 'ops-chat']);
    expect(config.notifications[1]).toMatchObject({ format: 'slack', tenants: ['default'], events: ['noticeReceived', 'drainDeadlineNear', 'shortCircuit', 'shortCircuitEnded', 'providerError'] });
  });
});

describe('examples/webhook-receiver.ts', { timeout: 60_000 }, () => {
  it("takes a real server's deliveries, once each, and refuses forged, stale and unsigned ones", async () => {
    const events: DroverEvent[] = [];
    receiver = await startReceiver({ secrets: [SECRET], port: 0, onEvent: (e) => void events.push(e) });
    const url = `http://127.0.0.1:${(receiver.address() as AddressInfo).port}/drover`;
    // The example's endpoint as it is written, pointed at this receiver and a secret of the test's.
    const example = (parse(CONFIG) as { notifications: Array<Record<string, unknown>> }).notifications[0]!;
    t = new TestServer({ shard: { healthCheckInterval: '1h', startupTimeout: '2h', resyncInterval: '0s' } });
    const secretFile = join(t.dir, 'hook.secret');
    writeFileSync(secretFile, `${SECRET}\n`, { mode: 0o600 });
    t.writeConfig({ notifications: [{ ...example, url, secretFile }] });
    await t.start();

    await expect.poll(() => events.filter((e) => e.type === 'instanceCreated').length, { timeout: 20_000 }).toBe(2);
    await expect.poll(() => t!.server.db.outbox.list({ state: 'pending' }).length).toBe(0);
    expect(events.every((e) => e.id.startsWith('ev-test-') && e.shard === 'test')).toBe(true);

    const post = async (body: string, signature?: string): Promise<number> =>
      (await fetch(url, { method: 'POST', body, headers: { 'Content-Type': 'application/json', ...(signature ? { 'Drover-Signature': signature } : {}) } })).status;
    const now = Math.floor(Date.now() / 1000);
    const known = JSON.stringify(events[0]);
    const fresh = JSON.stringify({ ...events[0], id: 'ev-test-forged' });
    // A delivery Drover sent before (a retry, a redelivery): accepted, not handed on again.
    const before = events.length;
    expect(await post(known, signatureHeader([SECRET], now, known))).toBe(200);
    expect(events).toHaveLength(before);
    expect(await post(fresh, signatureHeader(['someone-elses-secret-0123'], now, fresh))).toBe(401);
    expect(await post(fresh, signatureHeader([SECRET], now - 600, fresh))).toBe(401);
    expect(await post(fresh)).toBe(401);
    expect(await post(`${fresh} `, signatureHeader([SECRET], now, fresh))).toBe(401);
    expect(events).toHaveLength(before);
    expect(await post(fresh, signatureHeader([SECRET], now, fresh))).toBe(200);
    expect(events.map((e) => e.id)).toContain('ev-test-forged');
  });

  it('accepts either secret while one rotates, whichever a receiver still knows', () => {
    const body = '{"id":"ev-x-1"}';
    const now = 1_800_000_000;
    const both = signatureHeader([SECRET, OLD_SECRET], now, body);
    expect(verifyDroverSignature(both, body, [OLD_SECRET], now)).toBe(true);
    expect(verifyDroverSignature(both, body, [SECRET], now)).toBe(true);
    expect(verifyDroverSignature(signatureHeader([SECRET], now, body), body, [SECRET, OLD_SECRET], now)).toBe(true);
    expect(verifyDroverSignature(both, body, ['a-third-secret-0123456789'], now)).toBe(false);
    expect(verifyDroverSignature(both, body, [SECRET], now + 301)).toBe(false);
    expect(verifyDroverSignature(both, body, [SECRET], now - 301)).toBe(false);
    expect(verifyDroverSignature(`t=${now},v1=zz`, body, [SECRET], now)).toBe(false);
    expect(verifyDroverSignature(undefined, body, [SECRET], now)).toBe(false);
  });

  it('is the verification snippet src/notifications/README.md shows, word for word', () => {
    const source = readFileSync(join(ROOT, 'examples/webhook-receiver.ts'), 'utf8');
    const snippet = /\/\/ verify:begin[^\n]*\n([\s\S]*?)\/\/ verify:end/.exec(source)?.[1];
    expect(snippet).toMatch(/export function verifyDroverSignature/);
    const readme = readFileSync(join(ROOT, 'src/notifications/README.md'), 'utf8');
    expect(readme).toContain(snippet!.trim());
  });
});

