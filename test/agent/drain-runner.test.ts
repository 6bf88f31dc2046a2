/**
 * The drain runner alone: a ManualClock, a fake `send`, fake drain commands whose exit the test
 * decides, and extension requests the test answers.
 */
import { describe, expect, it } from 'vitest';
import { DrainRunner } from '../../src/agent/drain-runner.js';
import type { ServerResult } from '../../src/agent/protocol.js';
import { ManualClock } from '../../src/clock/index.js';
import { FakeLink, FakeRunner } from './fakes.js';
import { TestLogger } from './harness.js';

const capped = 'drain deadline at its limit; not asking again (the drain command is killed at the deadline)';
const refused = 'drain extension refused by the server; not asking again';
const unanswered = 'drain extension not answered; retrying';

/** Extension requests as the runner makes them, each waiting for the test's answer. */
class Extensions {
  readonly asked: { byMs: number; answer: (a: ServerResult | string) => void }[] = [];
  readonly request = (byMs: number): Promise<ServerResult | string> => new Promise((resolve) => this.asked.push({ byMs, answer: resolve }));
  get last(): { byMs: number; answer: (a: ServerResult | string) => void } {
    const req = this.asked[this.asked.length - 1];
    if (!req) throw new Error('no extension was asked for');
    return req;
  }
}

function setup({ withCommand = true, intervalMs = 1_000 } = {}) {
  const drainCommand = withCommand ? ['drain-it'] : undefined;
  const clock = new ManualClock();
  const link = new FakeLink();
  const log = new TestLogger();
  const runner = new FakeRunner();
  const extensions = new Extensions();
  const env = { DROVER_INSTANCE_ID: 'i-test' };
  const drains = new DrainRunner({
    drainCommand,
    env,
    clock,
    logger: log,
    send: link.send,
    requestExtension: extensions.request,
    intervalMs: () => intervalMs,
    cancelGraceMs: 5_000,
    runCommand: runner.run,
  });
  const iso = (ms: number): string => new Date(ms).toISOString();
  return { clock, link, log, runner, extensions, drains, env, iso, t0: clock.nowMs() };
}

function ok(drainDeadline: string): ServerResult {
  return { type: 'result', requestId: 'r', ok: true, message: 'extended', drainDeadline };
}

describe('drain runner', () => {
  it('runs the drain command with the drain in its environment, killed at the deadline, and acks on exit 0', async () => {
    const { clock, link, runner, drains, env, iso, t0 } = setup();
    const deadline = iso(t0 + 600_000);
    drains.start('expiry', deadline);
    expect(runner.runs).toHaveLength(1);
    expect(runner.last.argv).toEqual(['drain-it']);
    expect(runner.last.options.env).toEqual({ ...env, DROVER_DRAIN_REASON: 'expiry', DROVER_DRAIN_DEADLINE: deadline });
    expect(runner.last.options.deadlineMs).toBe(t0 + 600_000);
    expect(drains.status).toEqual({ reason: 'expiry', deadline });
    expect(link.sent).toEqual([]);

    runner.last.exit(0);
    await clock.advance(0);
    expect(link.sent).toEqual([{ type: 'drainAck' }]);

    // The drain again (the server missed the ack): the ack again, the command not re-run.
    drains.start('expiry', deadline);
    expect(link.sent).toEqual([{ type: 'drainAck' }, { type: 'drainAck' }]);
    expect(runner.runs).toHaveLength(1);
  });

  it('gives a command whose deadline is (nearly) past at least a second', () => {
    const { runner, drains, iso, t0 } = setup();
    drains.start('expiry', iso(t0 - 5_000));
    expect(runner.last.options.deadlineMs).toBe(t0 + 1_000);
  });

  it('keeps an ack it could not send until sendPendingAck(), and sends it once', async () => {
    const { clock, link, runner, drains, iso, t0 } = setup();
    drains.start('expiry', iso(t0 + 600_000));
    link.connected = false;
    runner.last.exit(0);
    await clock.advance(0);
    expect(link.sent).toEqual([]);
    link.connected = true;
    drains.sendPendingAck();
    drains.sendPendingAck();
    expect(link.sent).toEqual([{ type: 'drainAck' }]);
  });

  it('does not ack a failed command, and runs it again on a repeated drain', async () => {
    const { clock, link, log, runner, drains, iso, t0 } = setup();
    drains.start('unhealthy', iso(t0 + 600_000));
    runner.last.exit(3);
    await clock.advance(0);
    expect(log.count('drain command failed; drain not acknowledged')).toBe(1);
    drains.sendPendingAck();
    expect(link.sent).toEqual([]);
    drains.start('unhealthy', iso(t0 + 600_000));
    expect(runner.runs).toHaveLength(2);
  });

  it('does not ack a drain without a drain command', async () => {
    const { clock, link, log, runner, drains, iso, t0 } = setup({ withCommand: false });
    drains.start('scaleDown', iso(t0 + 600_000));
    await clock.advance(600_000);
    expect(runner.runs).toEqual([]);
    expect(link.sent).toEqual([]);
    expect(log.count('no drainCommand configured; not acknowledging (the operator or the deadline ends the drain)')).toBe(1);
    expect(drains.status).toMatchObject({ reason: 'scaleDown' });
  });

  it('asks for an extension when the deadline comes within range, takes the new deadline, and stops asking once it stops moving', async () => {
    const { clock, log, runner, extensions, drains, iso, t0 } = setup();
    drains.start('scaleDown', iso(t0 + 100_000));
    // Asked for when within max(2 × 1 s, 30 s) of the deadline, by max(5 × 1 s, 60 s).
    await clock.advance(69_999);
    expect(extensions.asked).toEqual([]);
    await clock.advance(1);
    expect(extensions.asked.map((a) => a.byMs)).toEqual([60_000]);

    // The server's result moves the deadline (the agent passes it on before the answer).
    const extended = t0 + 160_000;
    drains.takeDeadline(iso(extended));
    extensions.last.answer(ok(iso(extended)));
    await clock.advance(0);
    expect(runner.last.deadlines).toEqual([t0 + 100_000, extended]);
    expect(drains.status?.deadline).toBe(iso(extended));

    await clock.advance(extended - 30_000 - clock.nowMs());
    expect(extensions.asked).toHaveLength(2);
    extensions.last.answer(ok(iso(extended))); // the cap: the deadline no longer moves
    await clock.advance(0);
    expect(log.count(capped)).toBe(1);
    await clock.advance(60_000);
    expect(extensions.asked).toHaveLength(2);
    expect(runner.last.deadlines).toEqual([t0 + 100_000, extended]);
  });

  it('retries an unanswered extension after min(interval, 5 s)', async () => {
    const { clock, log, extensions, drains, iso, t0 } = setup();
    drains.start('expiry', iso(t0 + 20_000)); // already within range
    await clock.advance(0);
    expect(extensions.asked).toHaveLength(1);
    extensions.last.answer('no answer from the server within 10s');
    await clock.advance(999);
    expect(extensions.asked).toHaveLength(1);
    expect(log.count(unanswered)).toBe(1);
    await clock.advance(1);
    expect(extensions.asked).toHaveLength(2);
  });

  it('scales extensions with a long interval: asked for within 2 intervals, by 5, retried after 5 s at most', async () => {
    const { clock, extensions, drains, iso, t0 } = setup({ intervalMs: 20_000 });
    drains.start('expiry', iso(t0 + 100_000));
    await clock.advance(59_999);
    expect(extensions.asked).toEqual([]);
    await clock.advance(1);
    expect(extensions.asked.map((a) => a.byMs)).toEqual([100_000]);
    extensions.last.answer('not connected to the Drover server');
    await clock.advance(5_000);
    expect(extensions.asked).toHaveLength(2);
  });

  it('stops asking when the server refuses an extension', async () => {
    const { clock, log, extensions, drains, iso, t0 } = setup();
    drains.start('expiry', iso(t0 + 20_000));
    await clock.advance(0);
    extensions.last.answer({ type: 'result', requestId: 'r', ok: false, message: 'not allowed' });
    await clock.advance(30_000);
    expect(extensions.asked).toHaveLength(1);
    expect(log.lines.find((l) => l.msg === refused)?.obj).toMatchObject({ message: 'not allowed' });
  });

  it('asks for nothing once the command has ended', async () => {
    const { clock, runner, extensions, drains, iso, t0 } = setup();
    drains.start('expiry', iso(t0 + 100_000));
    runner.last.exit(0);
    await clock.advance(100_000);
    expect(extensions.asked).toEqual([]);
  });

  it('on cancel SIGTERMs the command, SIGKILLs it after the grace, forgets the drain and sends no ack', async () => {
    const { clock, link, log, runner, extensions, drains, iso, t0 } = setup();
    drains.start('scaleDown', iso(t0 + 100_000));
    const command = runner.last;
    drains.cancel();
    expect(command.kills).toEqual(['SIGTERM']);
    expect(drains.status).toBeUndefined();
    await clock.advance(4_999);
    expect(command.kills).toEqual(['SIGTERM']);
    await clock.advance(1);
    expect(command.kills).toEqual(['SIGTERM', 'SIGKILL']);
    command.exit(0);
    await clock.advance(100_000);
    expect(link.sent).toEqual([]);
    expect(extensions.asked).toEqual([]);
    expect(log.count('cancelled drain command ended')).toBe(1);

    drains.start('expiry', iso(clock.nowMs() + 100_000)); // a later drain runs the command again
    expect(runner.runs).toHaveLength(2);
  });

  it('forgets an ack not yet sent when the drain is cancelled', async () => {
    const { clock, link, runner, drains, iso, t0 } = setup();
    drains.start('scaleDown', iso(t0 + 100_000));
    link.connected = false;
    runner.last.exit(0);
    await clock.advance(0);
    drains.cancel();
    link.connected = true;
    drains.sendPendingAck();
    expect(link.sent).toEqual([]);
  });

  it('after stop() sends nothing and asks for nothing; killCommand() SIGTERMs the command', async () => {
    const { clock, link, runner, extensions, drains, iso, t0 } = setup();
    drains.start('scaleDown', iso(t0 + 100_000));
    drains.stop();
    await clock.advance(90_000);
    expect(extensions.asked).toEqual([]);
    drains.killCommand();
    expect(runner.last.kills).toEqual(['SIGTERM']);
    runner.last.exit(0);
    await clock.advance(0);
    expect(link.sent).toEqual([]);
  });
});
