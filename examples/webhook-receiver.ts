/**
 * A receiver for Drover's webhooks, in plain Node (no Drover import: copy it into your service).
 * It checks each delivery's `Drover-Signature` (HMAC-SHA256 of "<t>.<raw body>", compared in
 * constant time, `t` within 5 minutes of now, any of the active secrets), answers 401 to anything
 * else, and hands each event on once: Drover delivers at least once, so a retry or a redelivery
 * brings an event again, with the same `id`.
 *
 * Run it beside examples/webhooks.yaml (which points an endpoint at it):
 *   head -c 32 /dev/urandom | base64 > .drover/hook.secret && chmod 600 .drover/hook.secret
 *   DROVER_WEBHOOK_SECRET_FILE=.drover/hook.secret npx tsx examples/webhook-receiver.ts
 */
import { createHmac, timingSafeEqual } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';

// verify:begin (src/notifications/README.md shows this function; a test keeps them the same)
/**
 * Whether `header` (the `Drover-Signature` request header) signs `rawBody` (the bytes received,
 * before any JSON parsing) with one of `secrets`, at a time within `toleranceSeconds` of now.
 * List two secrets while rotating: the new one and the old one.
 */
export function verifyDroverSignature(header: string | undefined, rawBody: string, secrets: readonly string[], nowSeconds = Math.floor(Date.now() / 1000), toleranceSeconds = 300): boolean {
  if (!header) return false;
  let timestamp: number | null = null;
  const signatures: Buffer[] = [];
  for (const part of header.split(',')) {
    const [key, value = ''] = part.trim().split('=');
    if (key === 't' && /^\d{1,12}$/.test(value)) timestamp = Number(value);
    else if (key === 'v1' && /^[0-9a-f]{64}$/.test(value)) signatures.push(Buffer.from(value, 'hex'));
  }
  if (timestamp === null || signatures.length === 0) return false;
  // An old (or future) signature is a replay, or a clock far off: refuse it.
  if (Math.abs(nowSeconds - timestamp) > toleranceSeconds) return false;
  return secrets.some((secret) => {
    const expected = createHmac('sha256', secret).update(`${timestamp}.${rawBody}`).digest();
    // Constant time: the comparison must not tell an attacker how much of a guess was right.
    return signatures.some((signature) => timingSafeEqual(signature, expected));
  });
}
// verify:end

/** The event Drover sends (format `json`); see src/notifications/README.md for every field. */
export interface DroverEvent {
  id: string;
  type: string;
  at: string;
  shard: string;
  tenant: string | null;
  group: string | null;
  instanceId: string | null;
  reason: string | null;
  detail: string | null;
  actor: string | null;
  auditSeq: number | null;
  drainDeadline?: string;
}

export interface ReceiverOptions {
  /** The active secrets (the current one, and the previous one while rotating). */
  secrets: readonly string[];
  /** Called once per event id, in the order the events arrive (Drover sends an instance's events in order). */
  onEvent: (event: DroverEvent) => void | Promise<void>;
  port?: number;
  host?: string;
  /** Event ids already handled. A real service keeps them in its database, for longer than Drover retries (retryFor, 24 h by default). */
  seen?: Set<string>;
}

/** The largest body accepted; Drover's events are a few hundred bytes. */
const MAX_BODY_BYTES = 64 * 1024;

/** Starts the receiver; resolves with the server once it listens. */
export async function startReceiver(options: ReceiverOptions): Promise<Server> {
  const seen = options.seen ?? new Set<string>();
  const server = createServer((req, res) => {
    if (req.method !== 'POST') return void res.writeHead(405).end();
    const chunks: Buffer[] = [];
    let size = 0;
    req.on('data', (chunk: Buffer) => {
      size += chunk.length;
      if (size > MAX_BODY_BYTES) req.destroy();
      else chunks.push(chunk);
    });
    req.on('end', () => {
      const body = Buffer.concat(chunks).toString('utf8');
      const header = req.headers['drover-signature'];
      if (!verifyDroverSignature(typeof header === 'string' ? header : undefined, body, options.secrets)) return void res.writeHead(401).end('bad signature');
      let event: DroverEvent;
      try {
        event = JSON.parse(body) as DroverEvent;
      } catch {
        return void res.writeHead(400).end('not JSON');
      }
      // A duplicate is answered 2xx too: it was received, and Drover must stop sending it.
      if (seen.has(event.id)) return void res.writeHead(200).end('duplicate');
      // Answer once handled, and quickly (Drover's timeout is 10 s by default): a failure here
      // answers 500, and Drover sends the event again later.
      Promise.resolve(options.onEvent(event)).then(
        () => {
          seen.add(event.id);
          res.writeHead(200).end('ok');
        },
        () => res.writeHead(500).end('failed'),
      );
    });
  });
  await new Promise<void>((resolve) => server.listen(options.port ?? 8080, options.host ?? '127.0.0.1', resolve));
  return server;
}

if (import.meta.url === `file://${process.argv[1] ?? ''}`) {
  const file = process.env.DROVER_WEBHOOK_SECRET_FILE ?? '.drover/hook.secret';
  const secrets = readFileSync(file, 'utf8')
    .split('\n')
    .map((line) => line.trim())
    .filter((line) => line !== '');
  const server = await startReceiver({
    secrets,
    onEvent: (e) => console.log(`${e.at} ${e.type} ${e.tenant ?? '-'}/${e.group ?? '-'} ${e.instanceId ?? ''} ${e.reason ?? ''}: ${e.detail ?? ''}`),
  });
  console.log(`listening on http://127.0.0.1:${(server.address() as AddressInfo).port}/drover`);
}
