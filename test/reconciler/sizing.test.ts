import { describe, expect, it } from 'vitest';
import type { GroupSizing, ScheduleSpec } from '../../src/config/index.js';
import { decideSize, type SizingFacts } from '../../src/reconciler/sizing.js';

const t = (iso: string): number => Date.parse(iso);

const schedule = (index: number, cron: string, size: number, timezone = 'UTC', name?: string): ScheduleSpec => ({ index, name: name ?? cron, cron, timezone, size });

// Weekday mornings 12 at 08:00 UTC, evenings 4 at 20:00 UTC. 2026-01-05 is a Monday.
const MORNING = schedule(0, '0 8 * * 1-5', 12, 'UTC', 'weekday mornings');
const EVENING = schedule(1, '0 20 * * *', 4);

function facts(over: Partial<Omit<SizingFacts, 'sizing'>> & { sizing?: Partial<GroupSizing> } = {}): SizingFacts {
  const { sizing, ...rest } = over;
  return {
    tenant: 'acme',
    group: 'web',
    sizing: { size: 6, min: 2, max: 40, schedules: [], autoscale: null, ...sizing },
    configSince: t('2026-01-01T00:00:00Z'),
    operator: null,
    sleep: null,
    autoscale: null,
    now: t('2026-01-05T10:00:00Z'),
    ...rest,
  };
}

describe('decideSize', () => {
  it('uses the configured size when nothing else set one', () => {
    const d = decideSize(facts());
    expect(d).toMatchObject({ size: 6, source: 'config', requested: 6, since: new Date('2026-01-01T00:00:00Z'), by: null, min: 2, max: 40, floor: 2, awakeSize: 6, schedule: null, nextSchedule: null, sleeping: null, wakeAt: null });
    expect(d.reason).toBe('the configured size 6 (in force since 2026-01-01T00:00:00.000Z)');
  });

  it('counts a configured size not recorded yet from now: a schedule that fired before does not replace it', () => {
    const d = decideSize(facts({ sizing: { schedules: [MORNING, EVENING] }, configSince: null }));
    expect(d).toMatchObject({ size: 6, source: 'config', since: new Date('2026-01-05T10:00:00Z'), schedule: { name: 'weekday mornings' } });
    expect(d.reason).toBe('the configured size 6; next schedule "0 20 * * *" sets 4 at 2026-01-05T20:00:00.000Z');
  });

  it('lets the latest schedule that has fired set the size, and says which and when the next fires', () => {
    const d = decideSize(facts({ sizing: { schedules: [MORNING, EVENING] } }));
    expect(d).toMatchObject({ size: 12, source: 'schedule', requested: 12, since: new Date('2026-01-05T08:00:00Z') });
    expect(d.schedule).toMatchObject({ name: 'weekday mornings', size: 12, at: new Date('2026-01-05T08:00:00Z') });
    expect(d.nextSchedule).toMatchObject({ index: 1, size: 4, at: new Date('2026-01-05T20:00:00Z') });
    expect(d.wakeAt).toEqual(new Date('2026-01-05T20:00:00Z'));
    expect(d.reason).toBe('schedule "weekday mornings" (0 8 * * 1-5, UTC) set 12 at 2026-01-05T08:00:00.000Z; next schedule "0 20 * * *" sets 4 at 2026-01-05T20:00:00.000Z');
  });

  it('keeps the evening size over the weekend, when the weekday schedule does not fire', () => {
    const d = decideSize(facts({ sizing: { schedules: [MORNING, EVENING] }, now: t('2026-01-10T10:00:00Z') }));
    expect(d).toMatchObject({ size: 4, source: 'schedule', since: new Date('2026-01-09T20:00:00Z') });
    expect(d.nextSchedule?.at).toEqual(new Date('2026-01-10T20:00:00Z'));
  });

  it('lets a config size seen to change after the latest fire win until the next schedule fires', () => {
    const changed = t('2026-01-05T09:00:00Z');
    const d = decideSize(facts({ sizing: { schedules: [MORNING, EVENING], size: 8 }, configSince: changed }));
    expect(d).toMatchObject({ size: 8, source: 'config', since: new Date(changed) });
    expect(d.reason).toMatch(/^the configured size 8 \(in force since 2026-01-05T09:00:00.000Z\); next schedule/);
    expect(decideSize(facts({ sizing: { schedules: [MORNING, EVENING], size: 8 }, configSince: changed, now: t('2026-01-05T20:00:00Z') })).size).toBe(4);
  });

  it("lets an operator's size stand until the next schedule fires, and says so", () => {
    const operator = { size: 20, at: t('2026-01-05T09:30:00Z'), by: 'operator:alice' };
    const d = decideSize(facts({ sizing: { schedules: [MORNING, EVENING] }, operator }));
    expect(d).toMatchObject({ size: 20, source: 'operator', by: 'operator:alice', since: new Date(operator.at) });
    expect(d.reason).toBe('operator:alice set 20 at 2026-01-05T09:30:00.000Z; it stands until the next schedule fires; next schedule "0 20 * * *" sets 4 at 2026-01-05T20:00:00.000Z');
    const later = decideSize(facts({ sizing: { schedules: [MORNING, EVENING] }, operator, now: t('2026-01-05T20:00:00Z') }));
    expect(later).toMatchObject({ size: 4, source: 'schedule' });
  });

  it("keeps an operator's size older than the latest fire from counting", () => {
    const operator = { size: 20, at: t('2026-01-05T07:59:59Z'), by: 'operator:alice' };
    expect(decideSize(facts({ sizing: { schedules: [MORNING] }, operator }))).toMatchObject({ size: 12, source: 'schedule' });
  });

  it("lets an operator's size win a tie with a schedule fire, and the later schedule in the config win a tie between schedules", () => {
    const at = t('2026-01-05T08:00:00Z');
    expect(decideSize(facts({ sizing: { schedules: [MORNING] }, operator: { size: 3, at, by: 'bob' } })).source).toBe('operator');
    const twin = schedule(1, '0 8 * * *', 7, 'UTC', 'daily eight');
    expect(decideSize(facts({ sizing: { schedules: [MORNING, twin] } })).schedule).toMatchObject({ name: 'daily eight', size: 7 });
    expect(decideSize(facts({ sizing: { schedules: [twin, { ...MORNING, index: 1 }] } })).schedule).toMatchObject({ name: 'weekday mornings', size: 12 });
  });

  it('keeps the size within min and max, and says it raised or lowered it', () => {
    const low = decideSize(facts({ operator: { size: 0, at: t('2026-01-05T09:00:00Z'), by: 'bob' } }));
    expect(low).toMatchObject({ size: 2, requested: 0, awakeSize: 2 });
    expect(low.reason).toMatch(/bob set 0 at .*; raised to min 2/);
    const high = decideSize(facts({ sizing: { max: 10 }, operator: { size: 50, at: t('2026-01-05T09:00:00Z'), by: 'bob' } }));
    expect(high).toMatchObject({ size: 10, requested: 50 });
    expect(high.reason).toMatch(/lowered to max 10/);
  });

  it("gives a sleeping tenant's group a size of 0, says what it would be awake, and wakes at until", () => {
    const sleep = { at: t('2026-01-05T09:00:00Z'), until: t('2026-01-05T18:00:00Z'), by: 'operator:alice' };
    const d = decideSize(facts({ sizing: { schedules: [MORNING, EVENING] }, sleep }));
    expect(d).toMatchObject({ size: 0, awakeSize: 12, source: 'schedule', sleeping: { since: new Date(sleep.at), until: new Date(sleep.until), by: 'operator:alice' } });
    expect(d.wakeAt).toEqual(new Date(sleep.until));
    expect(d.reason).toMatch(/^tenant acme is asleep \(since 2026-01-05T09:00:00.000Z, by operator:alice\) until 2026-01-05T18:00:00.000Z: size 0; awake it would be 12: schedule "weekday mornings"/);
  });

  it('ignores min while asleep, and a sleep until woken has no wake time of its own', () => {
    const d = decideSize(facts({ sleep: { at: t('2026-01-05T09:00:00Z'), until: null, by: 'bob' } }));
    expect(d).toMatchObject({ size: 0, min: 2, awakeSize: 6, wakeAt: null });
    expect(d.reason).toMatch(/until woken: size 0/);
  });

  it('treats a sleep whose until has passed as over', () => {
    const sleep = { at: t('2026-01-05T01:00:00Z'), until: t('2026-01-05T10:00:00Z'), by: 'bob' };
    expect(decideSize(facts({ sleep }))).toMatchObject({ size: 6, sleeping: null });
    expect(decideSize(facts({ sleep, now: t('2026-01-05T09:59:59Z') }))).toMatchObject({ size: 0 });
  });

  it('wakes at the earlier of the next schedule and the end of a sleep', () => {
    const sleep = { at: t('2026-01-05T09:00:00Z'), until: t('2026-01-06T01:00:00Z'), by: 'bob' };
    expect(decideSize(facts({ sizing: { schedules: [EVENING] }, sleep })).wakeAt).toEqual(new Date('2026-01-05T20:00:00Z'));
  });

  it('with autoscale, lets the schedule in force raise the floor instead of setting the size', () => {
    const autoscale = {
      prometheus: 'http://127.0.0.1:9090',
      query: 'q',
      targetPerInstance: 1,
      intervalMs: 30_000,
      queryTimeoutMs: 10_000,
      scaleUpCooldownMs: 0,
      scaleDownCooldownMs: 0,
      maxStepDown: { percent: 25 },
      bearerTokenFile: null,
    } as GroupSizing['autoscale'];
    const state = { size: 5, at: '2026-01-05T09:00:00.000Z', lastScaleUpAt: null, lastScaleDownAt: null, recommendations: [], last: null, blocked: null };
    const d = decideSize(facts({ sizing: { schedules: [MORNING], autoscale }, autoscale: state }));
    expect(d).toMatchObject({ source: 'autoscale', requested: 5, floor: 12, size: 12 });
    expect(d.reason).toMatch(/raised to 12, the floor schedule "weekday mornings" sets for autoscale/);
  });
});
