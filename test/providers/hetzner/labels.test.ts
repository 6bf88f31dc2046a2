/** Drover's tags as Hetzner labels: every encoded label is valid by Hetzner's rules, and reads back exactly. */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { PermanentError } from '../../../src/errors/index.js';
import { isLabelKey, isLabelValue, labelSelector, labelsFromTags, tagsFromLabels } from '../../../src/providers/hetzner/labels.js';
import { TAG } from '../../../src/providers/types.js';

const DROVER_TAGS: Record<string, string> = {
  [TAG.shard]: 'eu1',
  [TAG.tenant]: 'team-a',
  [TAG.group]: 'web.frontend_2',
  [TAG.instanceId]: 'i-0123456789abcdef',
  [TAG.templateHash]: '0123456789abcdef',
  [TAG.templateName]: 'web',
  [TAG.createdAt]: '2026-12-06T09:00:00.000Z',
  [TAG.drainStartedAt]: '2026-12-06T09:01:00.000Z',
  [TAG.drainDeadline]: '2026-12-06T09:06:00.000Z',
  [TAG.drainReason]: 'scaleDown',
  [TAG.drainCancelledAt]: '',
};

describe('Hetzner labels from Drover tags', () => {
  it('writes every Drover tag as a valid label and reads it back exactly', () => {
    const labels = labelsFromTags(DROVER_TAGS);
    for (const [k, v] of Object.entries(labels)) {
      expect(isLabelKey(k), k).toBe(true);
      expect(isLabelValue(v), `${k}=${v}`).toBe(true);
    }
    expect(labels['drover/shard']).toBe('eu1');
    expect(labels['drover/created-at']).toMatch(/^b32-[0-9a-v]+$/);
    expect(labels['drover/created-at']!.length).toBeLessThanOrEqual(63);
    expect(tagsFromLabels(labels)).toEqual(DROVER_TAGS);
  });

  it('round-trips any value whose encoding fits, and keeps plain values plain so selectors match them', () => {
    fc.assert(
      // 36 bytes of UTF-8 is the most whose encoding fits 63 characters (4 + 58).
      fc.property(fc.string({ maxLength: 36, unit: 'binary' }).filter((v) => Buffer.byteLength(v, 'utf8') <= 36), (value) => {
        const labels = labelsFromTags({ [TAG.group]: value });
        const written = labels['drover/group']!;
        expect(isLabelValue(written)).toBe(true);
        expect(tagsFromLabels(labels)[TAG.group]).toBe(value);
        if (isLabelValue(value) && !value.startsWith('b32-')) expect(written).toBe(value);
      }),
      { numRuns: 500 },
    );
  });

  it('encodes a plain value that looks encoded, so it cannot be misread', () => {
    const labels = labelsFromTags({ [TAG.group]: 'b32-abc' });
    expect(labels['drover/group']).not.toBe('b32-abc');
    expect(tagsFromLabels(labels)[TAG.group]).toBe('b32-abc');
  });

  it('refuses a value too long for a label even encoded, and a key that cannot be one, naming it', () => {
    expect(() => labelsFromTags({ [TAG.group]: `${'a'.repeat(62)}-` })).toThrow(PermanentError);
    expect(() => labelsFromTags({ [TAG.group]: `${'a'.repeat(62)}-` })).toThrow(/drover:group/);
    expect(() => labelsFromTags({ 'no spaces': 'x' })).toThrow(/cannot be a Hetzner label key/);
    expect(() => labelsFromTags({ 'a.b:c': 'x' })).toThrow(/cannot be a Hetzner label key/);
  });

  it('leaves labels that are not Drover\'s as they are, and builds a selector from the encoded labels', () => {
    expect(tagsFromLabels({ env: 'prod', 'b32-ish': 'b32-zzz!', 'example.com/owner': 'ops' })).toEqual({ env: 'prod', 'b32-ish': 'b32-zzz!', 'example.com/owner': 'ops' });
    expect(tagsFromLabels(labelsFromTags({ 'team:owner': 'ops' }))).toEqual({ 'team:owner': 'ops' });
    expect(labelSelector({ [TAG.shard]: 'eu1', [TAG.group]: 'web' })).toBe('drover/shard=eu1,drover/group=web');
  });
});
