import { defineConfig } from 'vitest/config';

/**
 * Tests that work on a manual clock or on plain values (the simulator above all, which is
 * CPU-bound), with no bound on how long anything takes, run first, two files at a time; then
 * the rest — real servers, etcd, Prometheus, browsers, child processes, whose timing bounds
 * assume the machine is not shared — one file at a time (vitest's default on 2 cores is one
 * worker: cores - 1). Each file costs about a second of start-up in its own process, so the
 * more files the first phase holds, the shorter the run.
 */
const PARALLEL = [
  ...['sim', 'reconciler', 'config', 'queue', 'store', 'errors', 'clock', 'util', 'docs', 'lint', 'examples', 'helpers', 'notifications', 'fakes'].map((dir) => `test/${dir}/**/*.test.ts`),
  // The cloud providers against their fakes on loopback, on manual clocks: no timing bounds.
  ...['aws', 'hetzner', 'sim', 'cloud-init'].map((dir) => `test/providers/${dir}/**/*.test.ts`),
  'test/autoscale/decide.test.ts',
  'test/autoscale/autoscaler.test.ts',
  'test/web/units.test.ts',
];

export default defineConfig({
  test: {
    testTimeout: 30_000,
    hookTimeout: 30_000,
    pool: 'forks',
    projects: [
      { extends: true, test: { name: 'parallel', include: PARALLEL, maxWorkers: 2, sequence: { groupOrder: 0 } } },
      { extends: true, test: { name: 'serial', include: ['test/**/*.test.ts'], exclude: PARALLEL, maxWorkers: 1, sequence: { groupOrder: 1 } } },
    ],
  },
});
