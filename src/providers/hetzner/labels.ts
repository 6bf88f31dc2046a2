/**
 * Drover's tags as Hetzner Cloud labels, and back.
 *
 * Hetzner's label rules (API reference, "Labels"): a key is an optional prefix (a DNS subdomain,
 * at most 253 characters) and '/', then a name of at most 63 characters; a value has at most 63
 * characters and may be empty. Names and values start and end with a letter or digit and may hold
 * '-', '_' and '.' in between. Drover's keys (`drover:shard`) and its values (ISO timestamps,
 * `2026-12-06T09:01:00.000Z`) do not fit as they are.
 *
 * Contract:
 * - Keys: `<prefix>:<name>` ↔ `<prefix>/<name>` when the prefix is one DNS label (`drover:shard`
 *   ↔ `drover/shard`); any other key must already be a valid label key. So a label someone else
 *   wrote with a one-label prefix (`team/owner`) reads back as `team:owner`.
 * - Values: a value that is a valid label value and does not start with `b32-` is kept as it is
 *   (names, ids, hashes, reasons: what label selectors match on). Any other value is written as
 *   `b32-` + its UTF-8 bytes in lowercase RFC 4648 base32hex without padding, which is valid and
 *   reads back exactly. An ISO timestamp takes 41 characters so.
 * - Round trip: `tagsFromLabels(labelsFromTags(t))` equals `t` for every encodable `t`; a value
 *   whose encoding is longer than 63 characters is refused with the tag named (a 63-character
 *   Drover name that ends in '-' is the only such Drover value).
 */
import { InvalidRequestError, PermanentError } from '../../errors/index.js';

export const LABEL_VALUE_MAX = 63;
export const LABEL_NAME_MAX = 63;
const ENCODED_PREFIX = 'b32-';
/** `prefix:name` keys: the prefix one DNS label. */
const COLON_KEY = /^([a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?):(.+)$/;
const SLASH_KEY = /^([a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?)\/(.+)$/;
/** Letters and digits at both ends, '-', '_' and '.' also inside. */
const SEGMENT = /^(?:[A-Za-z0-9](?:[A-Za-z0-9_.-]*[A-Za-z0-9])?)?$/;
const DNS_SUBDOMAIN = /^(?=.{1,253}$)[a-z0-9](?:[a-z0-9-]*[a-z0-9])?(?:\.[a-z0-9](?:[a-z0-9-]*[a-z0-9])?)*$/;
const BASE32HEX = '0123456789abcdefghijklmnopqrstuv';

/** Whether `value` is a valid Hetzner label value. */
export function isLabelValue(value: string): boolean {
  return value.length <= LABEL_VALUE_MAX && SEGMENT.test(value);
}

/** Whether `key` is a valid Hetzner label key. */
export function isLabelKey(key: string): boolean {
  const slash = key.lastIndexOf('/');
  const name = slash < 0 ? key : key.slice(slash + 1);
  if (name.length === 0 || name.length > LABEL_NAME_MAX || !SEGMENT.test(name)) return false;
  return slash < 0 || DNS_SUBDOMAIN.test(key.slice(0, slash));
}

function base32hex(bytes: Uint8Array): string {
  let out = '';
  let buffer = 0;
  let bits = 0;
  for (const byte of bytes) {
    buffer = (buffer << 8) | byte;
    bits += 8;
    while (bits >= 5) {
      out += BASE32HEX[(buffer >>> (bits - 5)) & 31];
      bits -= 5;
    }
    buffer &= (1 << bits) - 1;
  }
  if (bits > 0) out += BASE32HEX[(buffer << (5 - bits)) & 31];
  return out;
}

function fromBase32hex(text: string): Uint8Array | null {
  const out: number[] = [];
  let buffer = 0;
  let bits = 0;
  for (const ch of text) {
    const v = BASE32HEX.indexOf(ch);
    if (v < 0) return null;
    buffer = (buffer << 5) | v;
    bits += 5;
    if (bits >= 8) {
      out.push((buffer >>> (bits - 8)) & 255);
      bits -= 8;
    }
    buffer &= (1 << bits) - 1;
  }
  return Uint8Array.from(out);
}

/** The label key for a tag key. */
export function labelKey(tagKey: string): string {
  const colon = COLON_KEY.exec(tagKey);
  const key = colon ? `${colon[1]}/${colon[2]}` : tagKey;
  if (!isLabelKey(key)) throw new PermanentError(new InvalidRequestError(`labelling: tag key "${tagKey.slice(0, 80)}" cannot be a Hetzner label key`));
  return key;
}

/** The label value for a tag value (see the module contract). */
export function labelValue(tagKey: string, value: string): string {
  if (isLabelValue(value) && !value.startsWith(ENCODED_PREFIX)) return value;
  const encoded = ENCODED_PREFIX + base32hex(new TextEncoder().encode(value));
  if (encoded.length > LABEL_VALUE_MAX) {
    throw new PermanentError(new InvalidRequestError(`labelling: the value of ${tagKey} (${value.length} characters) does not fit a Hetzner label value (${LABEL_VALUE_MAX} characters) even encoded`));
  }
  return encoded;
}

export function labelsFromTags(tags: Record<string, string>): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [k, v] of Object.entries(tags)) out[labelKey(k)] = labelValue(k, v);
  return out;
}

/** Tags from labels; labels that are not Drover's pass through with their keys as they are. */
export function tagsFromLabels(labels: Record<string, string>): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [k, v] of Object.entries(labels)) {
    const slash = SLASH_KEY.exec(k);
    const key = slash ? `${slash[1]}:${slash[2]}` : k;
    let value = v;
    if (v.startsWith(ENCODED_PREFIX)) {
      const bytes = fromBase32hex(v.slice(ENCODED_PREFIX.length));
      // A label someone else wrote that only looks encoded is kept as it is.
      if (bytes) value = new TextDecoder('utf-8', { fatal: false }).decode(bytes);
    }
    out[key] = value;
  }
  return out;
}

/** A label selector (`k=v,...`) that matches the labels of these tags. */
export function labelSelector(tags: Record<string, string>): string {
  return Object.entries(labelsFromTags(tags))
    .map(([k, v]) => `${k}=${v}`)
    .join(',');
}
