/**
 * Rotating a webhook secret: the operator rewrites the secret file (new secret first, old one
 * second) and changes nothing in the config; the server re-reads the file on its timer and signs
 * from then on with both. A file that becomes unreadable keeps the secrets in force.
 */
import { chmodSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { SECRET_REREAD_MS } from '../../src/app/drover-server.js';
import { ManualClock } from '../../src/clock/index.js';
import { verifySignature } from '../../src/notifications/index.js';
import { TestServer } from '../helpers/server-harness.js';
import { WebhookReceiver } from '../helpers/webhook-receiver.js';

const ADMIN = 'admin-token-0123456789';
const OLD = 'old-webhook-secret-0123456789';
const NEW = 'new-webhook-secret-0123456789';
const QUIET = { healthCheckInterval: '1h', startupTimeout: '2h', resyncInterval: '0s' };

let t: TestServer | undefined;
let receiver: WebhookReceiver | undefined;
afterEach(async () => {
  await t?.close();
  await receiver?.close();
});

/** Sends a test event to `ops` and returns the signature header it was delivered with. */
async function signatureOfTest(server: TestServer, rx: WebhookReceiver): Promise<{ header: string; body: string }> {
  const sent = await server.api<{ eventId: string }>('POST', '/v1/notifications/ops/test');
  expect(sent.status).toBe(202);
  await rx.until(() => rx.accepted().some((r) => r.headers['drover-event-id'] === sent.body.eventId));
  const req = rx.accepted().find((r) => r.headers['drover-event-id'] === sent.body.eventId)!;
  return { header: String(req.headers['drover-signature']), body: req.body };
}

describe('webhook secret rotation', () => {
  it('signs with a rotated secret once the file is re-read, with no config change, and keeps the secrets when the file turns unreadable', async () => {
    const clock = new ManualClock(new Date('2026-12-06T12:00:00Z'));
    receiver = await WebhookReceiver.start();
    t = new TestServer({ token: ADMIN, shard: QUIET, clock });
    const secretFile = join(t.dir, 'hook.secret');
    writeFileSync(secretFile, `${OLD}\n`, { mode: 0o600 });
    t.writeConfig({ notifications: [{ name: 'ops', url: receiver.url, secretFile, timeout: '60s' }] });
    await t.start();
    const now = (): number => Math.floor(clock.nowMs() / 1000);

    const before = await signatureOfTest(t, receiver);
    expect(verifySignature(before.header, before.body, [OLD], now())).toMatchObject({ ok: true });
    expect(verifySignature(before.header, before.body, [NEW], now())).toMatchObject({ ok: false });

    writeFileSync(secretFile, `${NEW}\n${OLD}\n`, { mode: 0o600 });
    // Not yet re-read: still the old secret alone.
    const early = await signatureOfTest(t, receiver);
    expect(verifySignature(early.header, early.body, [NEW], now())).toMatchObject({ ok: false });

    await clock.advance(SECRET_REREAD_MS);
    const rotated = await signatureOfTest(t, receiver);
    expect(verifySignature(rotated.header, rotated.body, [NEW], now())).toMatchObject({ ok: true });
    expect(verifySignature(rotated.header, rotated.body, [OLD], now())).toMatchObject({ ok: true });
    expect(rotated.header.match(/v1=/g)).toHaveLength(2);

    // A file others can read is refused: the rotated secrets stay in force.
    chmodSync(secretFile, 0o644);
    writeFileSync(secretFile, `${NEW}\n`);
    await clock.advance(SECRET_REREAD_MS);
    const kept = await signatureOfTest(t, receiver);
    expect(kept.header.match(/v1=/g)).toHaveLength(2);
  });
});
