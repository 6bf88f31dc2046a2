import { describe, expect, it } from 'vitest';
import { b1Floor, type B1Result, type B2Result } from '../../bench/b1-scale-out.js';
import type { B3Result } from '../../bench/b3-at-rest.js';
import type { B3PassResult } from '../../bench/b3-worker.js';
import type { B5Result } from '../../bench/b5-agents.js';
import type { B8Run, B9Result } from '../../bench/b8-webhooks.js';
import { b1Met, b2Met, b3Met, b5Met, b8Met, b9Met, exitCode, verdicts } from '../../bench/targets.js';

const b1: B1Result = {
  seconds: 5.1,
  limitSeconds: 5,
  floor: { creates: 1000, callsPerSecond: 200, burst: 10, createLatencyMs: 50, debounceMs: 0 },
  ratio: 1.01,
  creates: 1000,
  throttled: 0,
  createRate: 199,
  firstCreateMs: 15,
  loopDelayP99Ms: 5,
  loopDelayMaxMs: 9,
  errors: 0,
};
const b2: B2Result = { probes: 200, p50Ms: 10, p99Ms: 20, maxMs: 25, limitMs: 10, ratio: 2, statusLatencyMs: 20, missed: 0 };

const b8Run: B8Run = { maxConcurrency: 4, events: 1000, p50Ms: 900, p99Ms: 1100, maxMs: 1200, perSec: 850, rawP50Ms: 890, rawP99Ms: 1090, rawPerSec: 860, p99Ratio: 1.01, throughputRatio: 0.99, writeMs: 400, duplicates: 0, missing: 0, orderViolations: 0 };
const b9: B9Result = {
  withoutSeconds: [5.2, 5.3],
  withSeconds: [5.3, 5.4],
  outboxOnlySeconds: [5.2, 5.3],
  withoutMean: 5.25,
  withMean: 5.35,
  outboxOnlyMean: 5.25,
  ratio: 1.019,
  outboxOnlyRatio: 1,
  withoutLoopP99Ms: [5, 6],
  withLoopP99Ms: [6, 7],
  delivered: [1010, 1010],
  deliveryP50Ms: 8,
  deliveryP99Ms: 150,
  throttled: 0,
};

const b3mPass: B3PassResult = {
  wallMs: 30_000,
  cpuMs: 25_000,
  listMs: 6_000,
  pages: 1001,
  listed: 1_000_000,
  reconciled: 10_000,
  creates: 0,
  deletes: 0,
  otherCalls: 0,
  errors: [],
  groupP50Ms: 5,
  groupP99Ms: 40,
  groupMaxMs: 100,
  maxRssMb: 1_300,
  rssBeforeMb: 150,
  groupsWithActions: 0,
  planP50Ms: 0.5,
  planP99Ms: 5,
};
const b3m: B3Result = {
  size: 'b3m',
  instances: 1_000_000,
  groups: 10_000,
  wallMs: 30_000,
  rawReadMs: 20_000,
  rawReadWarmRuns: [20_000],
  rawReadColdMs: 21_000,
  rawReadColdRuns: [21_000],
  rawCold: 'dropped page cache',
  ratio: 1.5,
  rawReadCpuMs: 14_000,
  cpuRatio: 1.8,
  rawStreamMs: 3_000,
  streamRatio: 10,
  pass: b3mPass,
  paged: null,
  populate: { populateMs: 20_000, firstPassMs: 40_000, maxRssMb: 1_300 },
  fleet: { firstLoadMs: 300, loadMedianMs: 200, requests: {}, cliGroupsMs: 800, pageGroups: 100, totalInstances: 1_000_000, totalGroups: 10_000, serverPassMs: 40_000, maxRssMb: 1_300 },
  targetFleetMs: 1_000,
  targetMs: null,
  targetRatio: 3,
  targetRssMb: 1_500,
};

describe('benchmark targets', () => {
  it('counts a B3-1M pass within 3 × the raw read and 1.5 GB only when it did nothing, reconciled every group, and the fleet page loaded in under a second', () => {
    expect(b3Met(b3m)).toBe(true);
    expect(b3Met({ ...b3m, ratio: 3.1 })).toBe(false);
    expect(b3Met({ ...b3m, pass: { ...b3mPass, maxRssMb: 1_600 } })).toBe(false);
    expect(b3Met({ ...b3m, pass: { ...b3mPass, creates: 1 } })).toBe(false);
    expect(b3Met({ ...b3m, pass: { ...b3mPass, reconciled: 9_999 } })).toBe(false);
    expect(b3Met({ ...b3m, pass: { ...b3mPass, groupsWithActions: 1 } })).toBe(false);
    expect(b3Met({ ...b3m, fleet: { ...b3m.fleet, firstLoadMs: 1_200 } })).toBe(false);
    expect(b3Met({ ...b3m, fleet: { ...b3m.fleet, totalInstances: 999_999 } })).toBe(false);
    // B3 (100k) is held to its wall-time target instead of the ratio.
    expect(b3Met({ ...b3m, size: 'b3', targetRatio: null, targetMs: 2_000, ratio: 10, wallMs: 1_900, targetRssMb: 1_500 })).toBe(true);
    expect(b3Met({ ...b3m, size: 'b3', targetRatio: null, targetMs: 2_000, ratio: 10, wallMs: 2_100, targetRssMb: 1_500 })).toBe(false);
  });

  it('computes B1\'s floor from the run\'s burst, rate, create latency and config debounce', () => {
    expect(b1Floor(b1.floor)).toBeCloseTo(990 / 200 + 0.05, 9);
    expect(b1Floor({ ...b1.floor, burst: 1000 })).toBeCloseTo(0.05, 9);
    expect(b1Floor({ ...b1.floor, debounceMs: 50, burst: 0 })).toBeCloseTo(0.05 + 5 + 0.05, 9);
  });

  it('counts a B1 run within 1.10 of its floor only when nothing was throttled and no reconcile failed', () => {
    expect(b1Met(b1)).toBe(true);
    expect(b1Met({ ...b1, ratio: 1.11 })).toBe(false);
    expect(b1Met({ ...b1, throttled: 1 })).toBe(false);
    expect(b1Met({ ...b1, errors: 1 })).toBe(false);
  });

  it('counts a B2 p99 only over at least 200 probes with none missed', () => {
    expect(b2Met(b2)).toBe(true);
    expect(b2Met({ ...b2, p99Ms: 101 })).toBe(false);
    expect(b2Met({ ...b2, probes: 20 })).toBe(false);
    expect(b2Met({ ...b2, missed: 1 })).toBe(false);
  });

  it('counts a webhook burst only when every event arrived once and in order, at both concurrencies', () => {
    expect(b8Met({ default: b8Run, max: { ...b8Run, maxConcurrency: 32 } })).toBe(true);
    expect(b8Met({ default: { ...b8Run, missing: 1 }, max: b8Run })).toBe(false);
    expect(b8Met({ default: b8Run, max: { ...b8Run, duplicates: 2 } })).toBe(false);
    expect(b8Met({ default: { ...b8Run, orderViolations: 1 }, max: b8Run })).toBe(false);
  });

  it("counts the outbox's cost on B1 within 1.05, with and without a receiver, and nothing throttled", () => {
    expect(b9Met(b9)).toBe(true);
    expect(b9Met({ ...b9, ratio: 1.06 })).toBe(false);
    expect(b9Met({ ...b9, outboxOnlyRatio: 1.06 })).toBe(false);
    expect(b9Met({ ...b9, throttled: 1 })).toBe(false);
  });

  it('exits non-zero when any scenario missed a target or failed to run, and zero when all met', () => {
    expect(exitCode(verdicts({ b1 }), [])).toBe(0);
    expect(exitCode(verdicts({ b1: { ...b1, throttled: 3 } }), [])).toBe(1);
    expect(exitCode(verdicts({ b1, b2: { ...b2, p99Ms: 500, bulk: b1 } }), [])).toBe(1);
    expect(exitCode(verdicts({ b1 }), ['b3'])).toBe(1);
  });
});

describe('B5 targets (issue 18: 10,000 agents)', () => {
  const b5: B5Result = {
    agents: 10_000,
    agentsStarted: 10_000,
    reportersInWindow: 10_000,
    p99Ms: 12,
    cpuShare: 0.12,
    serverPeakRssMb: 320,
    detectKillMs: 150,
    detectSilentMs: 15_400,
    pingTimeoutMs: 15_000,
    status: 'measured',
  };

  it('counts a run within every figure (p99 ≤ 20 ms, ≤ 0.15 core, peak RSS ≤ 600 MB, killed ≤ 1 s, silent ≤ ping timeout + 1 s)', () => {
    expect(b5Met(b5)).toBe(true);
    expect(b5Met({ ...b5, p99Ms: 21 })).toBe(false);
    expect(b5Met({ ...b5, cpuShare: 0.16 })).toBe(false);
    expect(b5Met({ ...b5, serverPeakRssMb: 601 })).toBe(false);
    expect(b5Met({ ...b5, detectKillMs: 1_001 })).toBe(false);
    expect(b5Met({ ...b5, detectSilentMs: 16_001 })).toBe(false);
  });

  it('does not count a run in which some agent was not connected or did not report in the window', () => {
    expect(b5Met({ ...b5, agents: 9_999 })).toBe(false);
    expect(b5Met({ ...b5, reportersInWindow: 9_990 })).toBe(false);
    expect(b5Met({ ...b5, serverPeakRssMb: undefined })).toBe(false);
  });
});
