import pino from 'pino';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { ManualClock } from '../../src/clock/index.js';
import { HealthIngest } from '../../src/server/health-ingest.js';
import { openLocalDb, type LocalDb } from '../../src/store/local-db.js';

const dbs: LocalDb[] = [];
afterEach(() => {
  for (const db of dbs.splice(0)) db.close();
});

/** A real in-memory store with `n` running instances that have reported once, at the clock's start. */
function setup(n: number, options: { tickMs?: number; maxBatch?: number } = {}) {
  const clock = new ManualClock(new Date(Date.UTC(2030, 0, 1)));
  const db = openLocalDb(':memory:');
  dbs.push(db);
  for (let k = 0; k < n; k++) {
    db.insertInstance({ id: `i-${k}`, tenant: 'default', group: 'web', templateName: 'web', templateHash: 'h', createReason: 'scaleUp', createdAt: clock.now(), status: 'running', healthAt: clock.now() });
  }
  const batches = vi.spyOn(db, 'recordHealthBatch');
  const recorded: Array<[string, string | undefined]> = [];
  const ingest = new HealthIngest({ clock, db, logger: pino({ level: 'silent' }), tickMs: options.tickMs ?? 5, maxBatch: options.maxBatch ?? 1_000, onRecorded: (id, sentAt) => recorded.push([id, sentAt]) });
  const later = (ms: number): Date => new Date(clock.nowMs() + ms);
  return { clock, db, batches, recorded, ingest, later };
}

describe('health group commit', () => {
  it('writes the reports of one tick in one transaction, a later report of an instance replacing its earlier one', async () => {
    const { clock, db, batches, recorded, ingest, later } = setup(3);
    ingest.report('i-0', later(1), 'a0');
    ingest.report('i-1', later(2), 'a1');
    ingest.report('i-0', later(3), 'a0-again');
    ingest.report('i-2', later(4), 'a2');
    expect(batches).not.toHaveBeenCalled();
    await clock.advance(5);
    expect(batches).toHaveBeenCalledTimes(1);
    expect(batches.mock.calls[0]?.[0].map((r) => [r.instanceId, r.at.getTime() - Date.UTC(2030, 0, 1)])).toEqual([
      ['i-0', 3],
      ['i-1', 2],
      ['i-2', 4],
    ]);
    expect(db.getInstance('i-0')?.healthAt?.getTime()).toBe(Date.UTC(2030, 0, 1) + 3);
    expect(recorded).toEqual([
      ['i-0', 'a0-again'],
      ['i-1', 'a1'],
      ['i-2', 'a2'],
    ]);
  });

  it('makes a report visible in the store after one tick and not before', async () => {
    const { clock, db, ingest, later } = setup(1);
    const at = later(1);
    ingest.report('i-0', at);
    await clock.advance(4);
    expect(db.getInstance('i-0')?.healthAt?.getTime()).toBe(Date.UTC(2030, 0, 1));
    await clock.advance(1);
    expect(db.getInstance('i-0')?.healthAt?.getTime()).toBe(at.getTime());
    expect(ingest.waiting).toBe(0);
  });

  it('starts a new transaction for the reports of the next tick', async () => {
    const { clock, batches, ingest, later } = setup(2);
    ingest.report('i-0', later(1));
    await clock.advance(5);
    ingest.report('i-1', later(1));
    await clock.advance(5);
    expect(batches.mock.calls.map((c) => c[0].map((r) => r.instanceId))).toEqual([['i-0'], ['i-1']]);
  });

  it('commits at once when the batch bound is reached, without waiting for the tick', () => {
    const { batches, ingest, later } = setup(5, { maxBatch: 3 });
    for (let k = 0; k < 4; k++) ingest.report(`i-${k}`, later(1));
    expect(batches.mock.calls.map((c) => c[0].length)).toEqual([3]);
    expect(ingest.waiting).toBe(1);
  });

  it('keeps the later time when an older report of an instance arrives after a newer one in the same tick', async () => {
    const { clock, db, ingest, later } = setup(1);
    const newer = later(3);
    ingest.report('i-0', newer);
    ingest.report('i-0', later(2));
    await clock.advance(5);
    expect(db.getInstance('i-0')?.healthAt?.getTime()).toBe(newer.getTime());
  });

  it('writes what waits when closed, and a report after closing at once', () => {
    const { db, batches, ingest, later } = setup(2);
    const first = later(1);
    ingest.report('i-0', first);
    ingest.close();
    expect(batches).toHaveBeenCalledTimes(1);
    expect(db.getInstance('i-0')?.healthAt?.getTime()).toBe(first.getTime());
    const second = later(2);
    ingest.report('i-1', second);
    expect(db.getInstance('i-1')?.healthAt?.getTime()).toBe(second.getTime());
  });

  it('drops a batch the store refuses and goes on with the next tick', async () => {
    const { clock, db, batches, recorded, ingest, later } = setup(1);
    batches.mockImplementationOnce(() => {
      throw new Error('disk I/O error');
    });
    ingest.report('i-0', later(1));
    await clock.advance(5);
    expect(recorded).toEqual([]);
    const next = later(1);
    ingest.report('i-0', next);
    await clock.advance(5);
    expect(db.getInstance('i-0')?.healthAt?.getTime()).toBe(next.getTime());
  });
});
