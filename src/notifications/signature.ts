/**
 * Webhook signatures: `Drover-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256 of "<t>.<body>">`,
 * one `v1` per active secret (two while a secret rotates), the scheme payment webhooks made
 * familiar. A receiver recomputes the HMAC over the raw body with its secret, compares in
 * constant time against any `v1`, and refuses a `t` outside its tolerance (replays).
 */
import { createHmac, timingSafeEqual } from 'node:crypto';

export const SIGNATURE_HEADER = 'Drover-Signature';
/** How far from the receiver's clock a signature's time may be, by default. */
export const DEFAULT_TOLERANCE_SECONDS = 300;

function hmacHex(secret: string, timestamp: number, body: string): string {
  return createHmac('sha256', secret).update(`${timestamp}.${body}`).digest('hex');
}

/** The header's value for `body` sent at `timestamp` (unix seconds), signed with every secret. */
export function signatureHeader(secrets: readonly string[], timestamp: number, body: string): string {
  return [`t=${timestamp}`, ...secrets.map((secret) => `v1=${hmacHex(secret, timestamp, body)}`)].join(',');
}

export type SignatureCheck = { ok: true; timestamp: number } | { ok: false; reason: string };

/**
 * Checks a `Drover-Signature` header as a receiver does (exported for receivers written in
 * TypeScript, and for the tests): well-formed, signed by one of `secrets`, and `t` within
 * `toleranceSeconds` of `nowSeconds`.
 */
export function verifySignature(header: string, body: string, secrets: readonly string[], nowSeconds: number, toleranceSeconds = DEFAULT_TOLERANCE_SECONDS): SignatureCheck {
  let timestamp: number | null = null;
  const signatures: string[] = [];
  for (const part of header.split(',')) {
    const eq = part.indexOf('=');
    if (eq < 0) continue;
    const key = part.slice(0, eq).trim();
    const value = part.slice(eq + 1).trim();
    if (key === 't' && /^\d{1,12}$/.test(value)) timestamp = Number(value);
    else if (key === 'v1' && /^[0-9a-f]{64}$/.test(value)) signatures.push(value);
  }
  if (timestamp === null) return { ok: false, reason: 'no timestamp (t=)' };
  if (signatures.length === 0) return { ok: false, reason: 'no v1 signature' };
  if (Math.abs(nowSeconds - timestamp) > toleranceSeconds) return { ok: false, reason: `timestamp ${timestamp} is more than ${toleranceSeconds}s from now` };
  for (const secret of secrets) {
    const expected = Buffer.from(hmacHex(secret, timestamp, body), 'hex');
    if (signatures.some((s) => timingSafeEqual(Buffer.from(s, 'hex'), expected))) return { ok: true, timestamp };
  }
  return { ok: false, reason: 'no signature matches' };
}
