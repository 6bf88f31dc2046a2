import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { LocalOperatorState, keys } from '../../src/state/index.js';
import { openLocalDb } from '../../src/store/index.js';

const dirs: string[] = [];
afterEach(() => {
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});

describe('LocalOperatorState', () => {
  it('reads back what it wrote, notifies listeners, and keeps it across a restart', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'drover-state-'));
    dirs.push(dir);
    const db = openLocalDb(join(dir, 'd.db'));
    const state = new LocalOperatorState(db, () => new Date('2026-01-01T00:00:00Z'));
    const changed: string[] = [];
    state.onChange((k) => changed.push(k));
    await state.set(keys.size('default', 'web'), { size: 5, base: 3, at: 'x', by: 'alice' });
    await state.set('protect/i-1', { until: 'y' });
    expect(state.get(keys.size('default', 'web'))).toEqual({ size: 5, base: 3, at: 'x', by: 'alice' });
    expect(state.list('protect/').map((e) => e.key)).toEqual(['protect/i-1']);
    await state.set('protect/i-1', null);
    expect(state.get('protect/i-1')).toBeUndefined();
    expect(changed).toEqual(['size/default/web', 'protect/i-1', 'protect/i-1']);
    db.close();
    const reopened = new LocalOperatorState(openLocalDb(join(dir, 'd.db')), () => new Date());
    expect(reopened.get<{ size: number }>(keys.size('default', 'web'))?.size).toBe(5);
    expect(reopened.list('')).toHaveLength(1);
  });

  it('says whether a namespace holds any entry, through writes, deletes and a restart', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'drover-state-'));
    dirs.push(dir);
    const db = openLocalDb(join(dir, 'd.db'));
    const state = new LocalOperatorState(db, () => new Date('2026-01-01T00:00:00Z'));
    expect(state.anyIn(keys.protection(''))).toBe(false);
    await state.set(keys.protection('i-1'), { until: 'y' });
    await state.set(keys.protection('i-2'), { until: 'y' });
    await state.set(keys.protection('i-2'), { until: 'z' });
    expect(state.anyIn('protect/')).toBe(true);
    expect(state.anyIn(keys.hold(''))).toBe(false);
    await state.set(keys.protection('i-1'), null);
    expect(state.anyIn('protect/')).toBe(true);
    await state.set(keys.protection('i-2'), null);
    expect(state.anyIn('protect/')).toBe(false);
    await state.set(keys.drainRequest('i-3'), { force: false, at: 'x', by: 'alice' });
    db.close();
    const reopened = new LocalOperatorState(openLocalDb(join(dir, 'd.db')), () => new Date());
    expect(reopened.anyIn('drain/')).toBe(true);
    expect(reopened.anyIn('protect/')).toBe(false);
  });
});
