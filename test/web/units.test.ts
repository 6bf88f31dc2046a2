/** The dashboard's pure parts, under Node: the SSE parser, the formatting rules, what a caller may do, and polling. */
import { describe, expect, it } from 'vitest';
import { ChangeCollector, fetchedAfter } from '../../web/src/changes.js';
import { callerLabel, mayActAnywhere, mayActOn, mayActServerWide, mayRedeliver, type Caller } from '../../web/src/caller.js';
import { ago, countdown, drainUrgent, drifted, duration, isUnhealthy, sizeValue, stateLabel, type InstanceLike } from '../../web/src/format.js';
import { Poller, type PollEnv } from '../../web/src/poll.js';
import { SseParser } from '../../web/src/sse-parser.js';

describe('SseParser', () => {
  it('parses events split across chunks at any point, with ids, comments, retry and CRLF', () => {
    const wire = 'retry: 2000\n\nevent: hello\ndata: {"leader":true}\n\n: keep-alive\n\nid: 7\r\nevent: audit\r\ndata: {"a":\r\ndata: 1}\r\n\r\ndata: plain\n\n';
    for (let cut = 0; cut <= wire.length; cut++) {
      const parser = new SseParser();
      const messages = [...parser.push(wire.slice(0, cut)), ...parser.push(wire.slice(cut))];
      expect(messages).toEqual([
        { event: 'hello', data: '{"leader":true}', id: null },
        { event: 'audit', data: '{"a":\n1}', id: '7' },
        { event: 'message', data: 'plain', id: null },
      ]);
      expect(parser.lastEventId).toBe('7');
      expect(parser.retryMs).toBe(2000);
    }
  });

  it('keeps an incomplete event until its blank line arrives', () => {
    const parser = new SseParser();
    expect(parser.push('event: drain\ndata: {}\n')).toEqual([]);
    expect(parser.push('\n')).toEqual([{ event: 'drain', data: '{}', id: null }]);
  });
});

describe('ChangeCollector', () => {
  it('gathers the events of one window into one change that knows its newest event', () => {
    const changes = new ChangeCollector();
    expect(changes.take()).toBeNull();
    changes.note({ group: 'default/web' }, 10);
    changes.note({ instance: 'i-1', group: 'default/api' }, 30);
    changes.note({ all: true }, 20);
    const change = changes.take()!;
    expect(change).toMatchObject({ all: true, latest: 30 });
    expect([...change.groups]).toEqual(['default/web', 'default/api']);
    expect([...change.instances]).toEqual(['i-1']);
    expect(changes.take()).toBeNull();
  });

  it('calls data current only when it was fetched after the newest event of the change, not merely after the first', () => {
    const changes = new ChangeCollector();
    changes.note({ all: true }, 100); // e.g. the config reloaded
    changes.note({ group: 'default/api' }, 300); // the audit entry written after it
    const change = changes.take()!;
    expect(fetchedAfter(change, 200)).toBe(false); // a fetch between the two may miss the audit entry
    expect(fetchedAfter(change, 301)).toBe(true);
    expect(fetchedAfter(change, 50)).toBe(false);
  });
});

describe('formatting', () => {
  const base: InstanceLike = { status: 'running', healthAt: '2026-01-01T00:00:00.000Z', unhealthyAt: null, providerStatus: 'running', drainDeadline: null, drainStartedAt: null, connected: true, templateHash: 'a' };
  const now = Date.parse('2026-01-01T00:10:00.000Z');

  it('writes durations with their two largest units', () => {
    expect(duration(0)).toBe('0s');
    expect(duration(45_000)).toBe('45s');
    expect(duration(200_000)).toBe('3m 20s');
    expect(duration(3_600_000)).toBe('1h');
    expect(duration(7_500_000)).toBe('2h 5m');
    expect(duration(3 * 86_400_000 + 3_600_000)).toBe('3d 1h');
    expect(ago(null, now)).toBe('—');
    expect(ago('2026-01-01T00:09:30.000Z', now)).toBe('30s ago');
  });

  it('counts down to a deadline and past it', () => {
    expect(countdown('2026-01-01T00:14:10.000Z', now)).toMatchObject({ text: 'in 4m 10s', overdue: false });
    expect(countdown('2026-01-01T00:09:48.000Z', now)).toMatchObject({ text: 'overdue 12s', overdue: true });
  });

  it('calls a drain urgent under a minute from its deadline or in its last fifth', () => {
    const draining = { status: 'draining', drainStartedAt: '2026-01-01T00:00:00.000Z' };
    expect(drainUrgent({ ...draining, drainDeadline: '2026-01-01T00:10:30.000Z' }, now)).toBe(true);
    expect(drainUrgent({ ...draining, drainDeadline: '2026-01-01T00:12:00.000Z' }, now)).toBe(true); // 2 of 12 minutes left
    expect(drainUrgent({ ...draining, drainDeadline: '2026-01-01T01:00:00.000Z' }, now)).toBe(false);
    expect(drainUrgent({ status: 'running', drainStartedAt: null, drainDeadline: null }, now)).toBe(false);
  });

  it('names instance states and sees trouble and drift', () => {
    expect(stateLabel(base)).toBe('in service');
    expect(stateLabel({ ...base, healthAt: null })).toBe('booting');
    expect(stateLabel({ ...base, connected: false })).toBe('disconnected');
    expect(stateLabel({ ...base, providerStatus: 'stopped' })).toBe('unhealthy');
    expect(stateLabel({ ...base, status: 'draining' })).toBe('draining');
    expect(stateLabel({ ...base, launchHook: 'pending' })).toBe('launch hook');
    expect(stateLabel({ ...base, launchHook: 'abandoned' })).toBe('abandoned');
    expect(stateLabel({ ...base, launchHook: 'continued' })).toBe('in service');
    expect(isUnhealthy({ ...base, status: 'draining', unhealthyAt: '2026-01-01T00:05:00.000Z' })).toBe(true);
    expect(isUnhealthy({ ...base, status: 'deleted', unhealthyAt: '2026-01-01T00:05:00.000Z' })).toBe(false);
    expect(drifted(base, 'b')).toBe(true);
    expect(drifted(base, 'a')).toBe(false);
    expect(drifted(base, null)).toBe(false);
  });

  it('sends the scale form as typed: numbers as numbers, anything else as text for the server to judge', () => {
    expect(sizeValue(' 5 ')).toBe(5);
    expect(sizeValue('-1')).toBe(-1);
    expect(sizeValue('2.5')).toBe(2.5);
    expect(sizeValue('abc')).toBe('abc');
    expect(sizeValue('')).toBe('');
  });
});

describe('what the caller may do', () => {
  const caller = (role: Caller['role'], tenants: string[] | null = null): Caller => ({ name: 'team-a', role, tenants, authRequired: true });

  it('offers changes to operators and admins, in their tenants only, and to nobody before whoami answers', () => {
    expect(mayActOn(caller('viewer'), 'a')).toBe(false);
    expect(mayActOn(caller('operator'), 'a')).toBe(true);
    expect(mayActOn(caller('operator', ['a']), 'a')).toBe(true);
    expect(mayActOn(caller('operator', ['a']), 'b')).toBe(false);
    expect(mayActOn(caller('admin'), 'b')).toBe(true);
    // The server limits an admin's token to its tenants too.
    expect(mayActOn(caller('admin', ['a']), 'b')).toBe(false);
    expect(mayActOn(undefined, 'a')).toBe(false);
    expect(mayActAnywhere(caller('viewer'))).toBe(false);
    expect(mayActAnywhere(caller('operator', ['a']))).toBe(true);
    expect(mayActAnywhere(undefined)).toBe(false);
  });

  it('offers server-wide webhook actions only to an operator of every tenant, and a dead letter to one who may act in its tenant', () => {
    expect(mayActServerWide(caller('operator'))).toBe(true);
    expect(mayActServerWide(caller('admin'))).toBe(true);
    expect(mayActServerWide(caller('operator', ['a']))).toBe(false);
    expect(mayActServerWide(caller('viewer'))).toBe(false);
    expect(mayActServerWide(undefined)).toBe(false);
    expect(mayRedeliver(caller('operator', ['a']), 'a')).toBe(true);
    expect(mayRedeliver(caller('operator', ['a']), 'b')).toBe(false);
    // An event of no tenant (a test event) is seen, and so redelivered, only with every tenant.
    expect(mayRedeliver(caller('operator', ['a']), null)).toBe(false);
    expect(mayRedeliver(caller('operator'), null)).toBe(true);
    expect(mayRedeliver(caller('viewer'), 'a')).toBe(false);
    expect(mayRedeliver(undefined, 'a')).toBe(false);
  });

  it('names the caller, its role and its tenants', () => {
    expect(callerLabel({ ...caller('viewer'), name: 'grafana' })).toBe('grafana · viewer');
    expect(callerLabel(caller('operator', ['a']))).toBe('team-a · operator (a)');
    expect(callerLabel(caller('operator', ['a', 'b']))).toBe('team-a · operator (a, b)');
    expect(callerLabel({ name: 'anonymous', role: 'admin', tenants: null, authRequired: false })).toBe('anonymous · admin');
  });
});

describe('Poller', () => {
  /** Timers and visibility the test drives: `tick` runs every interval timer once. */
  function fakeEnv(visible: boolean): PollEnv & { tick: () => void; setVisible: (v: boolean) => void; timers: Map<number, number>; listeners: number } {
    const timers = new Map<number, number>();
    const fns = new Map<number, () => void>();
    const listeners = new Set<() => void>();
    let next = 1;
    const env = {
      timers,
      get listeners() {
        return listeners.size;
      },
      setInterval: (fn: () => void, ms: number) => {
        const id = next++;
        timers.set(id, ms);
        fns.set(id, fn);
        return id;
      },
      clearInterval: (id: number) => {
        timers.delete(id);
        fns.delete(id);
      },
      visible: () => visible,
      onVisibilityChange: (fn: () => void) => {
        listeners.add(fn);
        return () => void listeners.delete(fn);
      },
      tick: () => {
        for (const fn of [...fns.values()]) fn();
      },
      setVisible: (v: boolean) => {
        visible = v;
        for (const l of [...listeners]) l();
      },
    };
    return env;
  }

  it('runs at its interval while the page is visible, not while it is hidden, and at once when it shows again', () => {
    const env = fakeEnv(true);
    let runs = 0;
    const poller = new Poller(() => runs++, 5_000, env);
    poller.start();
    expect([...env.timers.values()]).toEqual([5_000]);
    env.tick();
    env.tick();
    expect(runs).toBe(2);
    env.setVisible(false);
    expect(poller.polling).toBe(false);
    env.tick();
    expect(runs).toBe(2);
    env.setVisible(true);
    expect(runs).toBe(3);
    expect(env.timers.size).toBe(1);
    env.tick();
    expect(runs).toBe(4);
  });

  it('does not poll when started hidden until the page shows, and leaves no timer or listener once stopped', () => {
    const env = fakeEnv(false);
    let runs = 0;
    const poller = new Poller(() => runs++, 5_000, env);
    poller.start();
    expect(env.timers.size).toBe(0);
    env.setVisible(true);
    expect(runs).toBe(1);
    expect(poller.polling).toBe(true);
    // A second "visible" (focus changes can repeat it) does not add a timer or run again.
    env.setVisible(true);
    expect(runs).toBe(1);
    expect(env.timers.size).toBe(1);
    poller.stop();
    expect(env.timers.size).toBe(0);
    expect(env.listeners).toBe(0);
    env.setVisible(true);
    expect(runs).toBe(1);
  });
});
