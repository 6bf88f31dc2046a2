import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { ManualClock } from '../../src/clock/index.js';
import { TAG } from '../../src/providers/index.js';
import { SimProvider } from '../../src/providers/sim/index.js';
import { openLocalDb, type InstanceRecord, type LocalDb } from '../../src/store/index.js';
import type { CreateReason, DrainReason } from '../../src/reconciler/reasons.js';
import { modelConfig, type ModelBudget, type ModelConfig, type ModelGroup } from '../../sim/config-model.js';
import { CallLog, Disturbances, Failures, Invariants, OperatorLog, type WorldView } from '../../sim/invariants.js';
import type { ShardSpec } from '../../sim/scenario.js';
import { setRow } from '../helpers/store-fixtures.js';

const START = Date.UTC(2026, 0, 1);
const MIN = 60_000;

/** The checker's view of a config: health every 60 s, three missed reports; one group t/web. */
const SHARD: ShardSpec = {
  healthCheckIntervalMs: MIN,
  missedHealthThreshold: 3,
  startupTimeoutMs: 10 * MIN,
  defaultDrainTimeoutMs: 5 * MIN,
  createRateLimitMs: 0,
  defaultNoticeWindowMs: 2 * MIN,
  workers: 4,
  resyncIntervalMs: 10 * MIN,
  maxAttempts: 5,
};

function web(over: Partial<ModelGroup> = {}): ModelConfig {
  const group: ModelGroup = {
    tenant: 't',
    group: 'web',
    size: 2,
    sizeSince: 0,
    configSize: 2,
    min: 0,
    max: 100_000,
    autoscale: null,
    maxSurge: 1,
    template: 'a',
    image: 'a:1',
    drainTimeoutMs: 5 * MIN,
    startupTimeoutMs: 10 * MIN,
    eligibleAgeMs: 60 * MIN,
    forcedAgeMs: 120 * MIN,
    budgets: [],
    maxUnhealthy: null,
    maxDrainTimeoutMs: null,
    cancelHoldMs: 60 * MIN,
    healthSettleMs: 3 * MIN,
    unhealthyWindowMs: 9 * MIN,
    ...over,
  };
  return modelConfig(SHARD, [group]);
}

describe('Disturbances', () => {
  it('moves a due time past every span in which the reconciler could not act, chained', () => {
    const d = new Disturbances();
    d.begin(100);
    d.end(200);
    d.begin(200);
    d.end(300);
    d.begin(500);
    expect(d.firstClear(50)).toBe(50);
    expect(d.firstClear(150)).toBe(300);
    expect(d.firstClear(300)).toBe(300);
    expect(d.firstClear(400)).toBe(400);
    expect(d.firstClear(600)).toBe(Number.POSITIVE_INFINITY);
    expect(d.active).toBe(true);
    d.end(700);
    expect(d.firstClear(600)).toBe(700);
  });

  it('gives work due at a time the slack it needs, in a row, in time the reconciler could act', () => {
    const d = new Disturbances();
    d.begin(100);
    d.end(200);
    d.begin(250);
    d.end(400);
    expect(d.dueAfter(0, 50)).toBe(50);
    expect(d.dueAfter(80, 50)).toBe(250); // interrupted at 100: 50 in a row from 200
    expect(d.dueAfter(80, 100)).toBe(500); // 200-250 is too short: 100 in a row from 400
    expect(d.dueAfter(150, 10)).toBe(210);
    expect(d.dueAfter(150, 50)).toBe(250);
    d.begin(500);
    expect(d.dueAfter(450, 40)).toBe(490);
    expect(d.dueAfter(450, 60)).toBe(Number.POSITIVE_INFINITY);
  });

  it('counts an instant restart as an interruption (the reconciler starts over with an InitialReconcile)', () => {
    const d = new Disturbances();
    d.begin(100);
    d.end(100);
    expect(d.dueAfter(80, 50)).toBe(150);
    expect(d.dueAfter(100, 50)).toBe(150);
    expect(d.firstClear(100)).toBe(100);
  });
});

describe('Invariants', () => {
  let dir: string;
  let db: LocalDb;
  let clock: ManualClock;
  let provider: SimProvider;
  let leader: boolean;
  let disturbances: Disturbances;
  let checker: Invariants;
  let view: WorldView;
  const config = web();

  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), 'drover-sim-test-'));
    db = openLocalDb(join(dir, 'db.sqlite'));
    clock = new ManualClock(new Date(START));
    provider = new SimProvider({ clock });
    leader = true;
    disturbances = new Disturbances();
    view = {
      now: () => clock.nowMs(),
      db: () => db,
      provider,
      config: () => config,
      leader: () => leader,
      runningGeneration: () => 1,
      graceSince: () => START,
      disturbances,
      everRemoved: () => false,
      slackMs: () => 10_000,
      quietSlackMs: () => 10_000,
      callSpacingMs: () => 0,
      step: () => 0,
      groups: () => [{ tenant: 't', group: 'web' }],
    };
    checker = new Invariants(view);
    db.subscribe((change) => {
      if (change.kind === 'audit') checker.onAudit(change.entry);
    });
  });

  afterEach(() => {
    db.close();
    rmSync(dir, { recursive: true, force: true });
  });

  const record = (id: string, over: Partial<InstanceRecord> = {}): void => {
    db.insertInstance({ id, tenant: 't', group: 'web', templateName: 'a', templateHash: 'h', createReason: 'scaleUp', createdAt: clock.now(), ...over });
    db.appendAudit({ tenant: 't', group: 'web', at: clock.now(), instanceId: id, action: over.status === 'running' ? 'adopt' : 'create', reason: 'scaleUp' });
  };
  const invariants = (): string[] => checker.violations.map((v) => v.invariant);

  it('flags a create made when the group already had size + maxSurge live instances (invariant 1)', () => {
    record('i-1', { status: 'running' });
    record('i-2', { status: 'running' });
    record('i-3');
    expect(invariants()).toEqual([]);
    record('i-4');
    expect(invariants()).toEqual(['1']);
    expect(checker.violations[0]?.message).toMatch(/i-4 .* 3 instances already live, cap size \+ maxSurge = 3/);
  });

  it('counts instances the provider holds but the store forgot toward the cap (a leak is live)', async () => {
    record('i-1', { status: 'running' });
    await provider.create({ idempotencyKey: 'i-0', tags: { [TAG.tenant]: 't', [TAG.group]: 'web', [TAG.instanceId]: 'i-0' }, template: {} });
    await provider.create({ idempotencyKey: 'i-9', tags: { [TAG.tenant]: 't', [TAG.group]: 'web', [TAG.instanceId]: 'i-9' }, template: {} });
    record('i-2');
    expect(invariants()).toEqual(['1']);
    expect(checker.leaks()).toMatch(/provider holds .* that the store does not know/);
  });

  it('flags provider mutations and drain notices made while not leader, or by a crashed reconciler (invariant 4)', () => {
    record('i-1');
    checker.onMutation(1, 'create', 'i-1');
    expect(invariants()).toEqual([]);
    leader = false;
    checker.onMutation(1, 'delete', 'p-1');
    checker.onDrainNotice(1, 'i-1', 'scaleDown', new Date(START + MIN));
    leader = true;
    checker.onMutation(0, 'setTags', 'p-1');
    expect(invariants()).toEqual(['4', '4', '4']);
    expect(checker.violations[2]?.message).toMatch(/crashed/);
  });

  it('flags a provider create for an instance the store does not hold as a recorded create (invariant 1)', () => {
    checker.onMutation(1, 'create', 'i-ghost');
    expect(checker.violations.map((v) => v.message)).toEqual(['provider create for i-ghost, which the store holds as unknown (not a recorded create)']);
  });

  it('flags a drift drain whose replacement has not reported, or whose report is overdue (invariant 2)', async () => {
    record('i-old', { status: 'running', healthAt: clock.now() });
    record('i-new', { status: 'running', replaces: 'i-old', createReason: 'drift' });
    const drain = (): void => {
      setRow(db, 'i-old', { status: 'draining', drainReason: 'drift', drainDeadline: new Date(clock.nowMs() + 5 * MIN) });
      db.appendAudit({ tenant: 't', group: 'web', at: clock.now(), instanceId: 'i-old', action: 'drain', reason: 'drift' });
      setRow(db, 'i-old', { status: 'running' });
    };
    drain();
    expect(checker.violations.map((v) => v.invariant)).toEqual(['2']);
    await clock.advance(10 * MIN);
    db.updateInstance('i-new', { healthAt: new Date(clock.nowMs() - 4 * MIN) });
    drain();
    expect(checker.violations.map((v) => v.invariant).filter((i) => i === '2')).toHaveLength(2);
    db.updateInstance('i-new', { healthAt: clock.now() });
    const before = checker.violations.filter((v) => v.invariant === '2').length;
    drain();
    expect(checker.violations.filter((v) => v.invariant === '2')).toHaveLength(before);
  });

  it('flags a drain cut short, and one still running long past its deadline (invariant 3)', async () => {
    record('i-1', { status: 'running', healthAt: clock.now() });
    setRow(db, 'i-1', { status: 'draining', drainReason: 'scaleDown', drainDeadline: new Date(START + 5 * MIN) });
    db.appendAudit({ tenant: 't', group: 'web', at: clock.now(), instanceId: 'i-1', action: 'drain', reason: 'scaleDown' });
    checker.checkStep();
    expect(invariants()).toEqual([]);
    await clock.advance(5 * MIN + 10_000 + 1);
    checker.checkStep();
    expect(invariants()).toEqual(['3']);
    // Deleted "for its deadline" one minute early.
    record('i-2', { status: 'running' });
    setRow(db, 'i-2', { status: 'draining', drainReason: 'scaleDown', drainDeadline: new Date(clock.nowMs() + MIN) });
    db.appendAudit({ tenant: 't', group: 'web', at: clock.now(), instanceId: 'i-2', action: 'drain', reason: 'scaleDown' });
    setRow(db, 'i-2', { status: 'deleting', deleteReason: 'drainDeadline' });
    db.appendAudit({ tenant: 't', group: 'web', at: clock.now(), instanceId: 'i-2', action: 'delete', reason: 'drainDeadline' });
    expect(checker.violations.at(-1)?.message).toMatch(/i-2 deleted for its drain deadline 60s early/);
  });

  it('gives a due drain only the quiet slack while no provider call is in trouble, the full slack after a slow one', async () => {
    const calls = new CallLog();
    checker = new Invariants({ ...view, calls, quietSlackMs: () => 2_000 });
    db.subscribe((change) => {
      if (change.kind === 'audit') checker.onAudit(change.entry);
    });
    record('i-1', { status: 'running', healthAt: clock.now() });
    setRow(db, 'i-1', { status: 'draining', drainReason: 'scaleDown', drainDeadline: new Date(START + 5 * MIN) });
    // A list that took 30 s instead of its configured 1 s, ending 5 s before the deadline.
    const slow = calls.begin(START + 5 * MIN - 35_000, 1_000);
    calls.end(slow, START + 5 * MIN - 5_000, true);
    await clock.advance(5 * MIN + 5_000);
    checker.checkStep();
    expect(checker.violations).toEqual([]); // within the full slack (10 s): the trouble may have held it
    setRow(db, 'i-1', { status: 'deleting', deleteReason: 'drainDeadline' });
    record('i-2', { status: 'running', healthAt: clock.now() });
    setRow(db, 'i-2', { status: 'draining', drainReason: 'scaleDown', drainDeadline: new Date(clock.nowMs() + 5 * MIN) });
    const quick = calls.begin(clock.nowMs(), 1_000);
    calls.end(quick, clock.nowMs() + 1_000, true); // as configured: no trouble
    await clock.advance(5 * MIN + 3_000);
    checker.checkStep();
    expect(checker.violations.map((v) => v.message)).toEqual([expect.stringMatching(/i-2 \(draining\) still not deleted 1s after it was due/)]);
  });

  it('lets a due drain wait behind the status checks begun since it was due, one rate-limit slot per instance checked', async () => {
    const calls = new CallLog();
    checker = new Invariants({ ...view, calls, quietSlackMs: () => 2_000, callSpacingMs: () => 500 });
    record('i-1', { status: 'running', healthAt: clock.now() });
    setRow(db, 'i-1', { status: 'draining', drainReason: 'scaleDown', drainDeadline: new Date(START + 5 * MIN) });
    // A check begun before the deadline held nothing back; six checks of four instances begun
    // after it (a partition's re-polls) may have: 2 s more.
    calls.checked(START + 5 * MIN - 1_000, 'i-e');
    for (const [offset, id] of [[100, 'i-a'], [600, 'i-b'], [1_100, 'i-c'], [1_600, 'i-d'], [2_100, 'i-a'], [2_600, 'i-b']] as const) calls.checked(START + 5 * MIN + offset, id);
    await clock.advance(5 * MIN + 3_900);
    checker.checkStep();
    expect(checker.violations).toEqual([]); // 2 s quiet + 4 x 0.5 s
    await clock.advance(200);
    checker.checkStep();
    expect(checker.violations.map((v) => v.message)).toEqual([expect.stringMatching(/i-1 \(draining\) still not deleted 0s after it was due/)]);
  });

  it('does not hold a deadline that fell while the reconciler could not act against it', async () => {
    record('i-1', { status: 'running' });
    setRow(db, 'i-1', { status: 'draining', drainReason: 'scaleDown', drainDeadline: new Date(START + MIN) });
    disturbances.begin(START + 30_000);
    await clock.advance(30 * MIN);
    checker.checkStep();
    expect(invariants()).toEqual([]);
    disturbances.end(clock.nowMs());
    await clock.advance(5_000);
    checker.checkStep();
    expect(invariants()).toEqual([]);
    await clock.advance(10_000);
    checker.checkStep();
    expect(invariants()).toEqual(['3']);
  });

  it('bounds lifetimes by forcedAge + drainTimeout when forced expiry is on (invariant 3)', async () => {
    record('i-1', { status: 'running', confirmedAt: clock.now() });
    // Due at forcedAge, plus the slack to start the drain, plus drainTimeout, plus the slack to delete.
    await clock.advance(2 * 60 * MIN + 10_000 + 5 * MIN + 10_000);
    checker.checkStep();
    expect(invariants()).toEqual([]);
    await clock.advance(1);
    checker.checkStep();
    expect(checker.violations[0]?.message).toMatch(/forced expiry/);
  });

  it('flags an instance the store forgets while the provider still holds it (invariant 5)', async () => {
    await provider.create({ idempotencyKey: 'i-1', tags: { [TAG.tenant]: 't', [TAG.group]: 'web', [TAG.instanceId]: 'i-1' }, template: {} });
    record('i-1', { status: 'running' });
    setRow(db, 'i-1', { status: 'deleted', deleteReason: 'vanished' });
    db.appendAudit({ tenant: 't', group: 'web', at: clock.now(), instanceId: 'i-1', action: 'vanished', reason: 'vanished' });
    expect(invariants()).toEqual(['5']);
  });

  it('flags an instance moving backwards in its lifecycle', () => {
    record('i-1', { status: 'running' });
    setRow(db, 'i-1', { status: 'draining', drainReason: 'scaleDown', drainDeadline: new Date(START + MIN) });
    db.appendAudit({ tenant: 't', group: 'web', at: clock.now(), instanceId: 'i-1', action: 'drain', reason: 'scaleDown' });
    setRow(db, 'i-1', { status: 'running' });
    db.appendAudit({ tenant: 't', group: 'web', at: clock.now(), instanceId: 'i-1', action: 'created', reason: 'scaleUp' });
    expect(checker.violations.map((v) => v.message)).toEqual(['i-1 went from draining to running (created scaleUp)']);
  });
});

describe('the disruption invariants (7 to 11)', () => {
  let dir: string;
  let db: LocalDb;
  let clock: ManualClock;
  let log: OperatorLog;
  let checker: Invariants;
  const withBudgets = (budgets: ModelBudget[]): ModelConfig => web({ size: 4, maxSurge: 2, budgets, maxUnhealthy: { count: 1 }, maxDrainTimeoutMs: 10 * MIN });
  // 2026-01-01T00:00Z is 01:00 in Berlin: the zero-budget window below is open for 30 min.
  const BUDGETS: ModelBudget[] = [
    { index: 0, max: { count: 1 }, reasons: ['drift'], window: null },
    { index: 1, max: { count: 0 }, reasons: ['expiry'], window: { schedule: '0 * * * *', durationMs: 30 * MIN, timezone: 'Europe/Berlin' } },
  ];
  let config: ModelConfig;

  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), 'drover-sim-test-'));
    db = openLocalDb(join(dir, 'db.sqlite'));
    clock = new ManualClock(new Date(START));
    log = new OperatorLog();
    config = withBudgets(BUDGETS);
    const view: WorldView = {
      now: () => clock.nowMs(),
      db: () => db,
      provider: new SimProvider({ clock }),
      config: () => config,
      leader: () => true,
      runningGeneration: () => 1,
      graceSince: () => START,
      disturbances: new Disturbances(),
      everRemoved: () => false,
      slackMs: () => 10_000,
      quietSlackMs: () => 10_000,
      callSpacingMs: () => 0,
      step: () => 0,
      groups: () => [{ tenant: 't', group: 'web' }],
      operatorLog: log,
      failures: new Failures(),
    };
    checker = new Invariants(view);
    checker.onConfigApplied();
    db.subscribe((change) => {
      if (change.kind === 'audit') checker.onAudit(change.entry);
    });
  });

  afterEach(() => {
    db.close();
    rmSync(dir, { recursive: true, force: true });
  });

  const running = (id: string, over: Partial<InstanceRecord> = {}): void => {
    db.insertInstance({ id, tenant: 't', group: 'web', templateName: 'a', templateHash: 'old', createReason: 'scaleUp', createdAt: clock.now() });
    setRow(db, id, { status: 'running', healthAt: clock.now(), confirmedAt: clock.now(), ...over });
    db.appendAudit({ tenant: 't', group: 'web', at: clock.now(), instanceId: id, action: 'adopt', reason: 'scaleUp' });
  };
  const rotate = (id: string, target: string, reason: CreateReason): void => {
    db.insertInstance({ id, tenant: 't', group: 'web', templateName: 'a', templateHash: 'h', createReason: reason, replaces: target, createdAt: clock.now() });
    db.appendAudit({ tenant: 't', group: 'web', at: clock.now(), instanceId: id, action: 'create', reason });
  };
  const drain = (id: string, reason: DrainReason, deadlineMs = 5 * MIN): void => {
    setRow(db, id, { status: 'draining', drainReason: reason, drainStartedAt: clock.now(), drainDeadline: new Date(clock.nowMs() + deadlineMs) });
    db.appendAudit({ tenant: 't', group: 'web', at: clock.now(), instanceId: id, action: 'drain', reason });
  };
  const invariants = (): string[] => checker.violations.map((v) => v.invariant);

  it('counts rotations waiting for their replacement and drains against a budget (invariant 7)', () => {
    for (const id of ['i-1', 'i-2', 'i-3']) running(id);
    rotate('r-1', 'i-1', 'drift');
    expect(invariants()).toEqual([]);
    setRow(db, 'r-1', { status: 'running', healthAt: clock.now() });
    drain('i-1', 'drift'); // the rotation completes: the same disruption, not a second one
    expect(invariants()).toEqual([]);
    drain('i-2', 'scaleDown'); // not a reason of the drift budget
    expect(invariants()).toEqual([]);
    rotate('r-3', 'i-3', 'drift');
    expect(invariants()).toEqual(['7']);
    expect(checker.violations[0]?.message).toMatch(/2 disrupted under budgets\[0\] \(max 1 = 1 of size 4, drift.*i-1 drift draining.*i-3 drift waiting for r-3/);
  });

  it('exempts forced operator drains and cancelled operator rotations', () => {
    config = withBudgets([{ index: 0, max: { count: 1 }, reasons: ['operator'], window: null }]);
    checker.onConfigApplied();
    for (const id of ['i-1', 'i-2', 'i-3']) running(id);
    log.request('i-1', true);
    rotate('r-1', 'i-1', 'operator');
    log.request('i-2', false);
    rotate('r-2', 'i-2', 'operator');
    log.cancel('i-2'); // cancelled: r-2 is a plain member now
    log.request('i-3', false);
    rotate('r-3', 'i-3', 'operator');
    checker.checkStep();
    expect(invariants()).toEqual([]);
    setRow(db, 'r-1', { status: 'running', healthAt: clock.now() });
    drain('i-1', 'operator');
    expect(invariants()).toEqual([]);
  });

  it('keeps counting a rotation paused by a protection or a hold, from its replacement\'s create', async () => {
    for (const id of ['i-1', 'i-2']) running(id);
    rotate('r-1', 'i-1', 'drift');
    log.protect('i-1', clock.nowMs(), clock.nowMs() + 10 * MIN);
    await clock.advance(MIN);
    rotate('r-2', 'i-2', 'drift');
    expect(invariants()).toEqual(['7']);
    expect(checker.violations[0]?.message).toMatch(/i-1 drift waiting for r-1.*i-2 drift waiting for r-2/);
  });

  it('does not hold disruptions begun before a budget came into force against it', () => {
    config = withBudgets([]);
    checker.onConfigApplied();
    for (const id of ['i-1', 'i-2', 'i-3']) running(id);
    rotate('r-1', 'i-1', 'drift');
    rotate('r-2', 'i-2', 'drift');
    config = withBudgets(BUDGETS);
    checker.onConfigApplied();
    checker.checkStep();
    expect(invariants()).toEqual([]);
    rotate('r-3', 'i-3', 'drift');
    expect(invariants()).toEqual([]); // the only one begun under the budget
  });

  it('flags an expiry rotation begun inside an open zero-budget window (invariant 11), not one after it closes', async () => {
    running('i-1');
    running('i-2');
    rotate('r-1', 'i-1', 'expiry');
    expect(invariants()).toEqual(['11']);
    expect(checker.violations[0]?.message).toMatch(/window 0 \* \* \* \* for 30m \(Europe\/Berlin\) open since 2026-01-01T00:00:00.000Z/);
    await clock.advance(30 * MIN);
    rotate('r-2', 'i-2', 'expiry');
    expect(invariants()).toEqual(['11']);
  });

  it('flags a voluntary drain or rotation of a protected instance, not one once the protection ended (invariant 9)', async () => {
    running('i-1');
    running('i-2');
    log.protect('i-1', clock.nowMs(), clock.nowMs() + 10 * MIN);
    log.protect('i-2', clock.nowMs(), clock.nowMs() + 10 * MIN);
    drain('i-1', 'scaleDown');
    expect(invariants()).toEqual(['9']);
    log.unprotect('i-2', clock.nowMs());
    rotate('r-2', 'i-2', 'drift');
    expect(invariants()).toEqual(['9']);
  });

  it('judges a health action on its plan’s input: more than maxUnhealthy unhealthy stops it (invariant 8)', () => {
    running('i-1', { providerStatus: 'stopped' });
    running('i-2');
    running('i-3', { providerStatus: 'stopped' });
    const deleteTerminated = (id: string): void => {
      setRow(db, id, { status: 'deleting', deleteReason: 'terminated' });
      db.appendAudit({ tenant: 't', group: 'web', at: clock.now(), instanceId: id, action: 'delete', reason: 'terminated' });
    };
    checker.onPlanInput('t', 'web', db.liveInstances('t', 'web'));
    deleteTerminated('i-1');
    expect(invariants()).toEqual(['8']);
    expect(checker.violations[0]?.message).toMatch(/2 instances were unhealthy, more than maxUnhealthy 1: i-1 stopped, i-3 stopped/);
    db.updateInstance('i-3', { providerStatus: 'running' });
    checker.onPlanInput('t', 'web', db.liveInstances('t', 'web'));
    expect(checker.brakeChecks).toBe(1);
  });

  /** The plan sees `id` stopped and deletes it as terminated (what the reconciler does past healthSettle). */
  const deleteTerminated = (id: string): void => {
    db.updateInstance(id, { providerStatus: 'stopped', providerCheckedAt: clock.now() });
    checker.onPlanInput('t', 'web', db.liveInstances('t', 'web'));
    setRow(db, id, { status: 'deleting', deleteReason: 'terminated' });
    db.appendAudit({ tenant: 't', group: 'web', at: clock.now(), instanceId: id, action: 'delete', reason: 'terminated' });
  };
  /** i-1 and i-2 freeze in one instant and stay frozen. */
  const freezeTwo = () =>
    checker.onCorrelatedFailure('freeze', 't', 'web', [
      { id: 'i-1', up: true, until: Number.POSITIVE_INFINITY },
      { id: 'i-2', up: true, until: Number.POSITIVE_INFINITY },
    ]);

  it('holds a correlated failure together: no member that served is acted on before healthSettle, and those it replaced count for unhealthyWindow (invariant 12)', async () => {
    // maxUnhealthy 1; health every 60 s, 3 missed: healthSettle 3 min, unhealthyWindow 9 min.
    running('i-1');
    running('i-2');
    running('i-3');
    const frozen = freezeTwo();
    expect([...(frozen?.members.values() ?? [])].map((m) => m.clean)).toEqual([true, true]);
    await clock.advance(2 * MIN);
    deleteTerminated('i-1'); // seen stopped, replaced at once: 2 min after it failed
    expect(invariants()).toEqual(['12']);
    expect(checker.violations[0]?.message).toMatch(/i-1\w* 120s after it failed with 1 other\(s\) \(freeze of 2 at .*\), before healthSettle \(180s\)/);
    setRow(db, 'i-1', { status: 'deleted', deletedAt: clock.now() });
    await clock.advance(2 * MIN);
    db.updateInstance('i-3', { healthAt: clock.now() });
    deleteTerminated('i-2'); // past its settle, but the one replaced 2 min ago still counts
    expect(invariants()).toEqual(['12', '12']);
    expect(checker.violations[1]?.message).toMatch(/while 1 were unhealthy and 1 of its failure replaced for health within unhealthyWindow \(540s\), more than maxUnhealthy 1: i-2\w* stopped, i-1\w* replaced/);
    expect(checker.correlatedChecks).toBe(2);
  });

  it('does not hold to healthSettle a member of a correlated failure that had already failed, nor count a replaced one past unhealthyWindow (invariant 12)', async () => {
    running('i-1', { healthAt: new Date(START - 10 * MIN) }); // silent for 10 min: judged before the freeze
    running('i-2');
    running('i-3');
    const frozen = freezeTwo();
    expect([...(frozen?.members.values() ?? [])].map((m) => m.clean)).toEqual([false, true]);
    deleteTerminated('i-1');
    setRow(db, 'i-1', { status: 'deleted', deletedAt: clock.now() });
    await clock.advance(10 * MIN);
    db.updateInstance('i-3', { healthAt: clock.now() });
    deleteTerminated('i-2'); // i-1 left 10 min ago: past the window, it counts no more
    expect(invariants()).toEqual([]);
    expect(checker.correlatedChecks).toBe(2);
  });

  it('flags an extension past drainStartedAt + maxDrainTimeout, not a first deadline beyond it (invariant 10)', async () => {
    running('i-1');
    running('i-2');
    drain('i-1', 'scaleDown', 15 * MIN); // the config's choice: only extensions are capped
    checker.checkStep();
    expect(invariants()).toEqual([]);
    drain('i-2', 'scaleDown');
    db.updateInstance('i-2', { drainDeadline: new Date(clock.nowMs() + 11 * MIN) });
    db.appendAudit({ tenant: 't', group: 'web', at: clock.now(), instanceId: 'i-2', action: 'drainExtended', reason: 'scaleDown' });
    await Promise.resolve();
    expect(invariants()).toEqual(['10']);
    expect(checker.violations[0]?.message).toMatch(/past drain start \+ maxDrainTimeout/);
  });
});

describe('OperatorLog', () => {
  it('keeps protections and holds as spans: a new protection replaces one in force, unprotect ends it, a drain request lifts a hold', () => {
    const log = new OperatorLog();
    log.protect('i-1', 100, 500);
    log.protect('i-1', 200, 300);
    expect(log.protectedAt('i-1', 250)).toEqual({ from: 200, to: 300 });
    expect(log.protectedAt('i-1', 350)).toBeUndefined();
    log.cancel('i-2');
    expect(log.requested('i-2')).toBe(false);
    log.request('i-2', true);
    expect(log.requested('i-2')).toBe(true);
    expect(log.forced('i-2')).toBe(true);
    log.protect('i-3', 0, 100);
    log.unprotect('i-3', 50);
    expect(log.protectedIds(60)).toEqual([]);
  });
});
