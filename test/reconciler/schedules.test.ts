/**
 * Schedules through the real reconciler on a manual clock: the size follows each fire at its UTC
 * instant across both daylight saving changes in two zones, fires missed while the server was
 * down apply at start (audited once), an operator's size stands until the next fire.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { EventType, type AuditEntry } from '../../src/index.js';
import { keys, type SizeOverride } from '../../src/state/index.js';
import { Harness, configWith } from '../helpers/harness.js';

let h: Harness | undefined;
afterEach(async () => {
  await h?.close();
  h = undefined;
});

const MIN = 60_000;
// Instances never report health here: nothing is judged unhealthy or replaced, so the audit
// holds the size changes alone.
const QUIET = { healthCheckInterval: '30d', startupTimeout: '365d' };

/** 01:30 -> 3, 02:30 -> 4 (skipped on the spring day, repeated in Berlin in autumn), 08:00 -> 5, 20:00 -> 1. */
const scheduled = (timezone: string, fields: Record<string, unknown> = {}): Record<string, unknown> => ({
  size: 2,
  template: 'web',
  drainTimeout: '1m',
  schedules: [
    { cron: '30 1 * * *', timezone, size: 3, name: 'one-thirty' },
    { cron: '30 2 * * *', timezone, size: 4, name: 'two-thirty' },
    { cron: '0 8 * * *', timezone, size: 5, name: 'morning' },
    { cron: '0 20 * * *', timezone, size: 1, name: 'evening' },
  ],
  ...fields,
});

const sizeChanges = (harness: Harness, tenant = 'acme'): string[] =>
  harness.db
    .listAudit({ tenant })
    .filter((a: AuditEntry) => a.action === 'scale')
    .map((a) => `${a.at.toISOString()} ${a.detail?.match(/^size (\d+ -> \d+)/)?.[1]} ${a.reason}`);

async function runTo(harness: Harness, iso: string, step = 15 * MIN): Promise<void> {
  const end = Date.parse(iso);
  while (harness.clock.nowMs() < end) await harness.tick(Math.min(step, end - harness.clock.nowMs()));
}

async function operatorSize(harness: Harness, size: number, base: number): Promise<void> {
  const override: SizeOverride = { size, base, at: harness.clock.now().toISOString(), by: 'operator:alice' };
  await harness.reconciler.operatorState.set(keys.size('acme', 'web'), override);
  harness.reconciler.enqueue({ type: EventType.GroupChanged, tenant: 'acme', groupKey: 'web', cause: 'operator' });
  await harness.settle();
}

/** The instances counted toward the size once the group had a few minutes to get there. */
async function settledSize(harness: Harness): Promise<number> {
  await harness.tick(5 * MIN);
  return harness.live('acme', 'web').filter((i) => i.status === 'creating' || i.status === 'running').length;
}

describe('schedules through the reconciler', () => {
  it.each([
    {
      name: 'Berlin, spring: 02:30 does not exist and fires at 03:00 CEST',
      zone: 'Europe/Berlin',
      start: '2026-03-28T12:00:00Z',
      end: '2026-03-30T03:00:00Z',
      operatorAt: null,
      expected: [
        '2026-03-28T19:00:00.000Z 2 -> 1 schedule',
        '2026-03-29T00:30:00.000Z 1 -> 3 schedule',
        '2026-03-29T01:00:00.000Z 3 -> 4 schedule',
        '2026-03-29T06:00:00.000Z 4 -> 5 schedule',
        '2026-03-29T18:00:00.000Z 5 -> 1 schedule',
        '2026-03-29T23:30:00.000Z 1 -> 3 schedule',
        '2026-03-30T00:30:00.000Z 3 -> 4 schedule',
      ],
    },
    {
      name: 'New York, spring: 02:30 does not exist and fires at 03:00 EDT',
      zone: 'America/New_York',
      start: '2026-03-07T12:00:00Z',
      end: '2026-03-09T08:00:00Z',
      operatorAt: null,
      expected: [
        '2026-03-07T13:00:00.000Z 2 -> 5 schedule',
        '2026-03-08T01:00:00.000Z 5 -> 1 schedule',
        '2026-03-08T06:30:00.000Z 1 -> 3 schedule',
        '2026-03-08T07:00:00.000Z 3 -> 4 schedule',
        '2026-03-08T12:00:00.000Z 4 -> 5 schedule',
        '2026-03-09T00:00:00.000Z 5 -> 1 schedule',
        '2026-03-09T05:30:00.000Z 1 -> 3 schedule',
        '2026-03-09T06:30:00.000Z 3 -> 4 schedule',
      ],
    },
    {
      // 02:30 CEST (00:30Z) fires; 02:30 CET (01:30Z) does not: the operator's 7 set at 02:00 CET stands.
      name: 'Berlin, autumn: 02:30 happens twice and fires once',
      zone: 'Europe/Berlin',
      start: '2026-10-24T12:00:00Z',
      end: '2026-10-26T03:00:00Z',
      operatorAt: { at: '2026-10-25T01:00:00Z', check: '2026-10-25T01:45:00Z' },
      expected: [
        '2026-10-24T18:00:00.000Z 2 -> 1 schedule',
        '2026-10-24T23:30:00.000Z 1 -> 3 schedule',
        '2026-10-25T00:30:00.000Z 3 -> 4 schedule',
        '2026-10-25T07:00:00.000Z 7 -> 5 schedule',
        '2026-10-25T19:00:00.000Z 5 -> 1 schedule',
        '2026-10-26T00:30:00.000Z 1 -> 3 schedule',
        '2026-10-26T01:30:00.000Z 3 -> 4 schedule',
      ],
    },
    {
      // 01:30 EDT (05:30Z) fires; 01:30 EST (06:30Z) does not: the operator's 7 set at 01:00 EST stands.
      name: 'New York, autumn: 01:30 happens twice and fires once',
      zone: 'America/New_York',
      start: '2026-10-31T12:30:00Z',
      end: '2026-11-02T08:00:00Z',
      operatorAt: { at: '2026-11-01T06:00:00Z', check: '2026-11-01T06:45:00Z' },
      expected: [
        '2026-11-01T00:00:00.000Z 2 -> 1 schedule',
        '2026-11-01T05:30:00.000Z 1 -> 3 schedule',
        '2026-11-01T07:30:00.000Z 7 -> 4 schedule',
        '2026-11-01T13:00:00.000Z 4 -> 5 schedule',
        '2026-11-02T01:00:00.000Z 5 -> 1 schedule',
        '2026-11-02T06:30:00.000Z 1 -> 3 schedule',
        '2026-11-02T07:30:00.000Z 3 -> 4 schedule',
      ],
    },
  ])('follows its schedules at the right UTC instants across daylight saving ($name)', async ({ zone, start, end, operatorAt, expected }) => {
    h = await new Harness({ config: configWith({ acme: { web: scheduled(zone) } }, QUIET), start: new Date(start) }).start();
    // The configured size counts from when the server loaded it: schedules set the size from their next fire.
    expect(h.reconciler.sizeDecision('acme', 'web')).toMatchObject({ source: 'config', size: 2 });
    if (operatorAt) {
      await runTo(h, operatorAt.at);
      await operatorSize(h, 7, 2);
      await runTo(h, operatorAt.check);
      expect(h.reconciler.sizeDecision('acme', 'web')).toMatchObject({ size: 7, source: 'operator' });
      expect(await settledSize(h)).toBe(7);
    }
    await runTo(h, end);
    expect(sizeChanges(h)).toEqual(expected);
    expect(await settledSize(h)).toBe(4);
  });

  it('applies the latest fire missed while the server was down at start, audited once', async () => {
    h = await new Harness({ config: configWith({ acme: { web: scheduled('UTC') } }, QUIET), start: new Date('2026-01-05T12:00:00Z') }).start();
    expect(await settledSize(h)).toBe(2);
    await h.crash();
    // Down across 20:00 (1), 01:30 (3) and 02:30 (4): up at 03:00, the 02:30 size applies.
    await h.clock.advanceTo(Date.parse('2026-01-06T03:00:00Z'));
    await h.restart();
    expect(h.reconciler.sizeDecision('acme', 'web')).toMatchObject({ size: 4, source: 'schedule', schedule: { name: 'two-thirty' } });
    expect(await settledSize(h)).toBe(4);
    expect(sizeChanges(h)).toEqual(['2026-01-06T03:00:00.000Z 2 -> 4 schedule']);
    // Another restart audits nothing more.
    await h.crashAndRestart();
    await h.tick(MIN);
    expect(sizeChanges(h)).toHaveLength(1);
  });

  it("lets an operator's size stand until the next schedule fires, then the schedule's", async () => {
    h = await new Harness({ config: configWith({ acme: { web: scheduled('UTC') } }, QUIET), start: new Date('2026-01-05T12:00:00Z') }).start();
    await operatorSize(h, 9, 2);
    expect(h.reconciler.sizeDecision('acme', 'web')?.reason).toMatch(/^operator:alice set 9 at 2026-01-05T12:00:00.000Z; it stands until the next schedule fires; next schedule "evening" sets 1 at 2026-01-05T20:00:00.000Z$/);
    await runTo(h, '2026-01-05T19:54:00Z');
    expect(await settledSize(h)).toBe(9);
    await runTo(h, '2026-01-05T20:01:00Z');
    expect(h.reconciler.sizeDecision('acme', 'web')).toMatchObject({ size: 1, source: 'schedule' });
    expect(await settledSize(h)).toBe(1);
    expect(sizeChanges(h)).toEqual(['2026-01-05T20:00:00.000Z 9 -> 1 schedule']);
  });

  it('applies a change of the configured size at once, until the next schedule fires, audited once across a restart', async () => {
    h = await new Harness({ config: configWith({ acme: { web: scheduled('UTC') } }, QUIET), start: new Date('2026-01-05T12:00:00Z') }).start();
    await h.tick(MIN);
    h.loader.update(configWith({ acme: { web: scheduled('UTC', { size: 3 }) } }, QUIET));
    await h.settle();
    expect(h.reconciler.sizeDecision('acme', 'web')).toMatchObject({ size: 3, source: 'config', since: new Date('2026-01-05T12:01:00Z') });
    expect(await settledSize(h)).toBe(3);
    await h.crashAndRestart();
    await runTo(h, '2026-01-05T20:00:00Z');
    expect(sizeChanges(h)).toEqual(['2026-01-05T12:01:00.000Z 2 -> 3 config', '2026-01-05T20:00:00.000Z 3 -> 1 schedule']);
  });

  it('replans a group when schedules or bounds are added to the config: a new schedule applies at its next fire, a bound at once', async () => {
    h = await new Harness({ config: configWith({ acme: { web: { size: 2, template: 'web' } } }, QUIET), start: new Date('2026-01-05T12:00:00Z') }).start();
    h.loader.update(configWith({ acme: { web: { size: 2, template: 'web', schedules: [{ cron: '30 12 * * *', size: 5 }] } } }, QUIET));
    await h.settle();
    expect(h.reconciler.sizeDecision('acme', 'web')).toMatchObject({ size: 2, source: 'config', nextSchedule: { at: new Date('2026-01-05T12:30:00Z') } });
    await runTo(h, '2026-01-05T12:30:00Z');
    expect(h.reconciler.sizeDecision('acme', 'web')).toMatchObject({ size: 5, source: 'schedule' });
    expect(await settledSize(h)).toBe(5);
    h.loader.update(configWith({ acme: { web: { size: 2, min: 1, max: 4, template: 'web', schedules: [{ cron: '30 12 * * *', size: 4 }] } } }, QUIET));
    await h.settle();
    expect(await settledSize(h)).toBe(4);
    expect(sizeChanges(h)).toEqual(['2026-01-05T12:30:00.000Z 2 -> 5 schedule', '2026-01-05T12:35:00.000Z 5 -> 4 schedule']);
  });
});
