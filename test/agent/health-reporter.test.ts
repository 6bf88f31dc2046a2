/**
 * The health reporter alone: a ManualClock, a fake `send`, a workload flag and fake health
 * commands whose exit the test decides.
 */
import { describe, expect, it } from 'vitest';
import { HealthReporter } from '../../src/agent/health-reporter.js';
import { ManualClock } from '../../src/clock/index.js';
import { FakeLink, FakeRunner } from './fakes.js';
import { TestLogger } from './harness.js';

const unhealthy = 'instance unhealthy; not reporting health';
const healthyAgain = 'instance healthy again; reporting health';

function setup(extra: { workload?: { running: boolean }; healthCommand?: string[] } = {}) {
  const clock = new ManualClock();
  const link = new FakeLink();
  const log = new TestLogger();
  const runner = new FakeRunner();
  const env = { DROVER_INSTANCE_ID: 'i-test' };
  const reporter = new HealthReporter({ send: link.send, clock, logger: log, workload: extra.workload, healthCommand: extra.healthCommand, env, runCommand: runner.run });
  return { clock, link, log, runner, reporter, env, t0: clock.nowMs() };
}

describe('health reporter', () => {
  it('reports at once and then every interval, stamped with the clock', async () => {
    const { clock, link, reporter, t0 } = setup();
    reporter.start(1_000);
    await clock.advance(0);
    expect(link.of('health')).toEqual([{ type: 'health', at: new Date(t0).toISOString(), workload: 'none' }]);
    await clock.advance(999);
    expect(link.of('health')).toHaveLength(1);
    await clock.advance(1);
    await clock.advance(3_000);
    expect(link.of('health').map((m) => m.at)).toEqual([0, 1_000, 2_000, 3_000, 4_000].map((d) => new Date(t0 + d).toISOString()));
  });

  it('sends nothing while the workload is not running, logs each change once, and resumes when it runs again', async () => {
    const workload = { running: true };
    const { clock, link, log, reporter } = setup({ workload });
    reporter.start(1_000);
    await clock.advance(0);
    expect(link.of('health')).toEqual([expect.objectContaining({ workload: 'running' })]);

    workload.running = false;
    await clock.advance(3_000);
    expect(link.of('health')).toHaveLength(1);
    expect(log.lines.filter((l) => l.msg === unhealthy).map((l) => l.obj)).toEqual([{ problem: 'workload not running' }]);

    workload.running = true;
    await clock.advance(2_000);
    expect(link.of('health')).toHaveLength(3);
    expect(log.count(healthyAgain)).toBe(1);
  });

  it('requires the health command to exit 0 within one interval, and reports only then', async () => {
    const { clock, link, log, runner, reporter, env } = setup({ healthCommand: ['check'] });
    reporter.start(1_000);
    await clock.advance(0);
    expect(runner.runs).toHaveLength(1);
    expect(runner.last.argv).toEqual(['check']);
    expect(runner.last.options).toMatchObject({ env, timeoutMs: 1_000, output: 'quiet' });
    expect(link.sent).toEqual([]); // not before the command has passed
    runner.last.exit(0);
    await clock.advance(0);
    expect(link.of('health')).toHaveLength(1);

    await clock.advance(1_000);
    runner.last.exit(1, { stderrTail: 'disk full' });
    await clock.advance(0);
    expect(link.of('health')).toHaveLength(1);
    expect(log.lines.find((l) => l.msg === unhealthy)?.obj).toEqual({ problem: 'health command exit code 1: disk full' });

    await clock.advance(1_000);
    runner.last.exit(null, { timedOut: true });
    await clock.advance(0);
    expect(link.of('health')).toHaveLength(1);
    expect(log.count(unhealthy)).toBe(1);
    expect(runner.runs).toHaveLength(3);
  });

  it('begins each round an interval after the previous one began, or at once when a round took longer', async () => {
    const { clock, runner, reporter, t0 } = setup({ healthCommand: ['check'] });
    reporter.start(1_000);
    await clock.advance(300);
    runner.last.exit(0);
    await clock.advance(700);
    expect(runner.runs).toHaveLength(2); // at 1 000, not 1 300
    await clock.advance(1_500);
    runner.last.exit(0); // at 2 500: this round took 1 500
    await clock.advance(0);
    expect(runner.runs).toHaveLength(3);
    expect(clock.nowMs() - t0).toBe(2_500);
  });

  it('stop() ends the rounds and kills a running health command; start() begins again with the new interval', async () => {
    const { clock, link, runner, reporter } = setup({ healthCommand: ['check'] });
    reporter.start(1_000);
    await clock.advance(0);
    const first = runner.last;
    reporter.stop();
    expect(first.kills).toEqual(['SIGKILL']);
    first.exit(0); // it ends after stop(): nothing is sent for it
    await clock.advance(5_000);
    expect(link.sent).toEqual([]);
    expect(runner.runs).toHaveLength(1);

    reporter.start(500);
    await clock.advance(0);
    expect(runner.last.options.timeoutMs).toBe(500);
    runner.last.exit(0);
    await clock.advance(500);
    expect(link.of('health')).toHaveLength(1);
    expect(runner.runs).toHaveLength(3);
  });

  it('a second start() retires the first series: one round per interval, not two', async () => {
    const { clock, link, reporter } = setup();
    reporter.start(1_000);
    await clock.advance(400);
    reporter.start(1_000);
    await clock.advance(2_000);
    // Rounds at 0 (first series), then 400, 1 400, 2 400 (second series).
    expect(link.of('health')).toHaveLength(4);
  });
});
