import { describe, expect, it } from 'vitest';
import { b1Floor, type B1Result, type B2Result } from '../../bench/b1-scale-out.js';
import type { B5Result } from '../../bench/b5-agents.js';
import type { B8Run, B9Result } from '../../bench/b8-webhooks.js';
import { b1Met, b2Met, b5Met, b8Met, b9Met, exitCode, verdicts } from '../../bench/targets.js';

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

describe('benchmark targets', () => {
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
