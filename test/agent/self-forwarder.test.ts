/**
 * The self-service forwarder alone: a ManualClock, a fake `send`, results the test hands in.
 */
import { describe, expect, it } from 'vitest';
import type { DrainStatus } from '../../src/agent/drain-runner.js';
import type { AgentMessage, ServerResult } from '../../src/agent/protocol.js';
import { SelfForwarder } from '../../src/agent/self-forwarder.js';
import { ManualClock } from '../../src/clock/index.js';
import { FakeLink } from './fakes.js';
import { TestLogger } from './harness.js';

function setup() {
  const clock = new ManualClock();
  const link = new FakeLink();
  const log = new TestLogger();
  let drain: DrainStatus | undefined;
  const forwarder = new SelfForwarder({
    send: link.send,
    clock,
    logger: log,
    timeoutMs: 10_000,
    isConnected: () => link.connected,
    drainStatus: () => drain,
  });
  const setDrain = (d: DrainStatus | undefined): void => {
    drain = d;
  };
  return { clock, link, log, forwarder, setDrain, iso: (ms: number) => new Date(ms).toISOString(), t0: clock.nowMs() };
}

function requestId(msg: AgentMessage | undefined): string {
  if (!msg || !('requestId' in msg)) throw new Error('not a forwarded request');
  return msg.requestId;
}

function result(id: string, fields: Partial<ServerResult> = {}): ServerResult {
  return { type: 'result', requestId: id, ok: true, message: 'done', ...fields };
}

describe('self-service forwarder', () => {
  it('forwards protect, unprotect and extend with fresh request ids and answers with their results', async () => {
    const { link, forwarder, iso, t0 } = setup();
    const protect = forwarder.handle({ op: 'protect', forMs: 1_800_000 });
    const unprotect = forwarder.handle({ op: 'unprotect' });
    const extend = forwarder.handle({ op: 'extend', byMs: 600_000 });
    expect(link.sent).toEqual([
      { type: 'protect', forMs: 1_800_000, requestId: expect.any(String) },
      { type: 'unprotect', requestId: expect.any(String) },
      { type: 'extend', byMs: 600_000, requestId: expect.any(String) },
    ]);
    const [p, u, e] = link.sent.map(requestId);
    expect(new Set([p, u, e]).size).toBe(3);

    // Answered by id, in whatever order the results come.
    forwarder.onResult(result(e!, { ok: false, message: 'instance is not draining' }));
    forwarder.onResult(result(u!, { message: 'protection ended', protectedUntil: null }));
    forwarder.onResult(result(p!, { message: 'protected', protectedUntil: iso(t0 + 1_800_000), drainDeadline: iso(t0) }));
    expect(await protect).toEqual({ ok: true, message: 'protected', protectedUntil: iso(t0 + 1_800_000), drainDeadline: iso(t0) });
    expect(await unprotect).toEqual({ ok: true, message: 'protection ended', protectedUntil: null });
    expect(await extend).toEqual({ ok: false, message: 'instance is not draining' });
  });

  it('answers ok:false at once when not connected, sending nothing', async () => {
    const { link, forwarder } = setup();
    link.connected = false;
    expect(await forwarder.handle({ op: 'protect', forMs: 60_000 })).toEqual({ ok: false, message: 'not connected to the Drover server' });
    expect(link.sent).toEqual([]);
  });

  it('answers ok:false when no result comes within the timeout, and ignores the late result', async () => {
    const { clock, link, log, forwarder } = setup();
    let answer: unknown;
    void forwarder.handle({ op: 'protect', forMs: 60_000 }).then((a) => (answer = a));
    await clock.advance(9_999);
    expect(answer).toBeUndefined();
    await clock.advance(1);
    expect(answer).toEqual({ ok: false, message: 'no answer from the server within 10s' });
    forwarder.onResult(result(requestId(link.sent[0])));
    expect(log.count('result for an unknown or expired request')).toBe(1);
  });

  it('answers every waiting request with the reason when the connection is lost', async () => {
    const { forwarder } = setup();
    const a = forwarder.handle({ op: 'unprotect' });
    const b = forwarder.forward({ type: 'extend', byMs: 60_000 });
    forwarder.failAll('the connection to the Drover server was lost before it answered');
    expect(await a).toEqual({ ok: false, message: 'the connection to the Drover server was lost before it answered' });
    expect(await b).toBe('the connection to the Drover server was lost before it answered');
  });

  it('answers status from what it knows; any result updates the known protection', async () => {
    const { clock, link, forwarder, setDrain, iso, t0 } = setup();
    expect(await forwarder.handle({ op: 'status' })).toEqual({ ok: true, message: 'connected to the Drover server; not draining', connected: true, draining: false });

    // A result for a request that was not the workload's (an automatic extension) counts too.
    const extension = forwarder.forward({ type: 'extend', byMs: 60_000 });
    forwarder.onResult(result(requestId(link.sent[0]), { protectedUntil: iso(t0 + 60_000) }));
    await extension;
    setDrain({ reason: 'scaleDown', deadline: iso(t0 + 120_000) });
    expect(await forwarder.handle({ op: 'status' })).toEqual({
      ok: true,
      message: `connected to the Drover server; draining (scaleDown) until ${iso(t0 + 120_000)}; protected until ${iso(t0 + 60_000)}`,
      connected: true,
      draining: true,
      drainReason: 'scaleDown',
      drainDeadline: iso(t0 + 120_000),
      protectedUntil: iso(t0 + 60_000),
    });

    await clock.advance(60_000);
    link.connected = false;
    setDrain(undefined);
    expect((await forwarder.handle({ op: 'status' })).message).toBe(`not connected to the Drover server; not draining; protection ended at ${iso(t0 + 60_000)}`);
    forwarder.onResult(result('unsolicited', { protectedUntil: null }));
    expect(await forwarder.handle({ op: 'status' })).toMatchObject({ message: 'not connected to the Drover server; not draining; not protected', protectedUntil: null });
    expect(link.sent).toHaveLength(1); // status is never forwarded
  });

  it('after stop() answers waiting and new requests: the agent is stopping', async () => {
    const { link, forwarder } = setup();
    const waiting = forwarder.handle({ op: 'protect', forMs: 60_000 });
    forwarder.stop();
    expect(await waiting).toEqual({ ok: false, message: 'the agent is stopping' });
    expect(await forwarder.handle({ op: 'unprotect' })).toEqual({ ok: false, message: 'the agent is stopping' });
    expect(link.sent).toHaveLength(1);
  });
});
