import { describe, expect, it } from 'vitest';
import { ManualClock } from '../../../src/clock/clock.js';
import { InstanceNotFoundError, PermanentError, ThrottledError, isRetryable } from '../../../src/errors/index.js';
import { SimProvider, type SimCall, type SimProviderOptions } from '../../../src/providers/sim/sim-provider.js';
import { TAG, type ProviderCreateRequest } from '../../../src/providers/types.js';

const T0 = Date.UTC(2030, 0, 1);

function setup(options: Omit<SimProviderOptions, 'clock'> = {}): { clock: ManualClock; sim: SimProvider } {
  const clock = new ManualClock(new Date(T0));
  return { clock, sim: new SimProvider({ clock, ...options }) };
}

function request(instanceId: string, tags: Record<string, string> = {}): ProviderCreateRequest {
  return {
    idempotencyKey: instanceId,
    tags: { [TAG.instanceId]: instanceId, [TAG.tenant]: 'default', [TAG.group]: 'web', ...tags },
    template: { image: 'web:1' },
  };
}

/** Tracks whether a promise has settled, without awaiting it. */
function track<T>(promise: Promise<T>): { settled: () => boolean; promise: Promise<T> } {
  let done = false;
  const tracked = promise.finally(() => {
    done = true;
  });
  return { settled: () => done, promise: tracked };
}

async function thrown(promise: Promise<unknown>): Promise<unknown> {
  try {
    await promise;
  } catch (err) {
    return err;
  }
  throw new Error('expected the call to fail');
}

describe('SimProvider', () => {
  describe('create', () => {
    it('creates a running instance carrying the requested tags', async () => {
      const { sim } = setup();
      const created = await sim.create(request('i-1', { extra: 'x' }));
      expect(created.status).toBe('running');
      expect(created.tags).toMatchObject({ [TAG.instanceId]: 'i-1', extra: 'x' });
      expect(sim.instances()).toHaveLength(1);
      expect(sim.instances()[0]!.providerId).toBe(created.providerId);
      expect(sim.instances()[0]!.createdAt.getTime()).toBe(T0);
      expect(await sim.status(created.providerId)).toBe('running');
    });

    it('hands out a different provider id for each instance', async () => {
      const { sim } = setup();
      const ids = new Set<string>();
      for (let i = 0; i < 20; i++) ids.add((await sim.create(request(`i-${i}`))).providerId);
      expect(ids.size).toBe(20);
    });

    it('returns the same instance for a repeated idempotency key, without making a second', async () => {
      const { sim } = setup();
      const first = await sim.create(request('i-1'));
      const again = await sim.create(request('i-1'));
      expect(again.providerId).toBe(first.providerId);
      expect(sim.instances()).toHaveLength(1);
      const other = await sim.create(request('i-2'));
      expect(other.providerId).not.toBe(first.providerId);
      expect(sim.instances()).toHaveLength(2);
    });

    it('returns the same instance for a create repeated while the first is still in progress', async () => {
      const { clock, sim } = setup({ createLatencyMs: 100 });
      const first = sim.create(request('i-1'));
      const second = sim.create(request('i-1'));
      await clock.advance(100);
      const [a, b] = await Promise.all([first, second]);
      expect(a.providerId).toBe(b.providerId);
      expect(sim.instances()).toHaveLength(1);
    });

    it('does not share the caller’s tag object', async () => {
      const { sim } = setup();
      const req = request('i-1');
      const created = await sim.create(req);
      req.tags.mutated = 'yes';
      created.tags.mutated = 'yes';
      expect(sim.instances()[0]!.tags.mutated).toBeUndefined();
    });
  });

  describe('latency', () => {
    it('answers a create only once the clock has moved by its latency', async () => {
      const { clock, sim } = setup({ createLatencyMs: 50 });
      const pending = track(sim.create(request('i-1')));
      await clock.advance(49);
      expect(pending.settled()).toBe(false);
      // The instance exists (pending) while the create is in progress.
      expect(sim.instances().map((i) => i.status)).toEqual(['pending']);
      await clock.advance(1);
      expect(pending.settled()).toBe(true);
      expect((await pending.promise).status).toBe('running');
    });

    it('applies delete, status and list latencies', async () => {
      const { clock, sim } = setup({ deleteLatencyMs: 30, statusLatencyMs: 20, listLatencyMs: 10 });
      const { providerId } = await sim.create(request('i-1'));

      const list = track(sim.list({}));
      const status = track(sim.status(providerId));
      const del = track(sim.delete(providerId));
      await clock.advance(9);
      expect([list.settled(), status.settled(), del.settled()]).toEqual([false, false, false]);
      await clock.advance(1);
      expect([list.settled(), status.settled(), del.settled()]).toEqual([true, false, false]);
      await clock.advance(10);
      expect([status.settled(), del.settled()]).toEqual([true, false]);
      expect(sim.instances()).toHaveLength(1);
      await clock.advance(10);
      expect(del.settled()).toBe(true);
      expect(sim.instances()).toHaveLength(0);
    });

    it('applies latencies changed while running', async () => {
      const { clock, sim } = setup();
      sim.setLatency({ create: 200 });
      const pending = track(sim.create(request('i-1')));
      await clock.advance(199);
      expect(pending.settled()).toBe(false);
      await clock.advance(1);
      expect(pending.settled()).toBe(true);
    });

    it('makes the next calls slower with slowNext, then goes back to normal', async () => {
      const { clock, sim } = setup({ createLatencyMs: 10 });
      sim.slowNext('create', 1, 1_000);
      const slow = track(sim.create(request('i-1')));
      await clock.advance(10);
      expect(slow.settled()).toBe(false);
      await clock.advance(1_000);
      expect(slow.settled()).toBe(true);
      const normal = track(sim.create(request('i-2')));
      await clock.advance(10);
      expect(normal.settled()).toBe(true);
    });

    it('slows only the operations named', async () => {
      const { clock, sim } = setup();
      const { providerId } = await sim.create(request('i-1'));
      sim.slowNext(['status'], 2, 500);
      const list = track(sim.list({}));
      const status = track(sim.status(providerId));
      await clock.advance(0);
      expect(list.settled()).toBe(true);
      expect(status.settled()).toBe(false);
      await clock.advance(500);
      expect(status.settled()).toBe(true);
    });
  });

  describe('rate limit', () => {
    it('throttles calls beyond the rate and recovers as time passes', async () => {
      const { clock, sim } = setup({ maxCallsPerSecond: 10, burst: 2 });
      await sim.create(request('i-1'));
      await sim.create(request('i-2'));
      const err = await thrown(sim.create(request('i-3')));
      expect(err).toBeInstanceOf(ThrottledError);
      expect(isRetryable(err)).toBe(true);
      expect(sim.instances()).toHaveLength(2);
      expect(sim.stats.throttled).toBe(1);

      // Half a token is not enough...
      await clock.advance(50);
      await expect(sim.list({})).rejects.toBeInstanceOf(ThrottledError);
      // ...a whole one is.
      await clock.advance(50);
      await sim.create(request('i-3'));
      expect(sim.instances()).toHaveLength(3);
    });

    it('never admits more than the rate over time (beyond its burst)', async () => {
      const rate = 20;
      const burst = 2;
      const { clock, sim } = setup({ maxCallsPerSecond: rate, burst });
      let admitted = 0;
      for (let ms = 0; ms < 5_000; ms += 25) {
        for (let i = 0; i < 4; i++) {
          try {
            await sim.list({});
            admitted++;
          } catch (err) {
            expect(err).toBeInstanceOf(ThrottledError);
          }
        }
        await clock.advance(25);
      }
      expect(admitted).toBeLessThanOrEqual(burst + rate * 5);
      expect(admitted).toBeGreaterThanOrEqual(rate * 5 - 1);
    });

    it('counts every kind of call against the limit', async () => {
      const { sim } = setup({ maxCallsPerSecond: 1, burst: 2 });
      const { providerId } = await sim.create(request('i-1'));
      await sim.status(providerId);
      await expect(sim.setTags(providerId, { a: 'b' })).rejects.toBeInstanceOf(ThrottledError);
      await expect(sim.delete(providerId)).rejects.toBeInstanceOf(ThrottledError);
      expect(sim.instances()).toHaveLength(1);
    });

    it('does not limit calls when no rate is set', async () => {
      const { sim } = setup();
      for (let i = 0; i < 200; i++) await sim.list({});
      expect(sim.stats.list).toBe(200);
      expect(sim.stats.throttled).toBe(0);
    });
  });

  describe('setRate', () => {
    /** How many of `n` calls made at once are admitted. */
    async function admitted(sim: SimProvider, n: number): Promise<number> {
      let ok = 0;
      for (let i = 0; i < n; i++) {
        const err = await sim.list({}).then(
          () => null,
          (e: unknown) => e,
        );
        if (err === null) ok++;
        else expect(err).toBeInstanceOf(ThrottledError);
      }
      return ok;
    }

    it('limits an unlimited provider from now, its bucket full', async () => {
      const { clock, sim } = setup();
      expect(await admitted(sim, 50)).toBe(50);
      await clock.advance(10_000); // time without a limit earns nothing
      sim.setRate(10, 3);
      expect(await admitted(sim, 10)).toBe(3);
      await clock.advance(100);
      expect(await admitted(sim, 10)).toBe(1);
    });

    it('lifts the limit with 0', async () => {
      const { sim } = setup({ maxCallsPerSecond: 1, burst: 2 });
      expect(await admitted(sim, 5)).toBe(2);
      sim.setRate(0);
      expect(await admitted(sim, 100)).toBe(100);
      expect(sim.stats.throttled).toBe(3);
    });

    it('earns tokens at the old rate until the change and at the new one after it (not retroactively)', async () => {
      const { clock, sim } = setup({ maxCallsPerSecond: 1, burst: 2 });
      expect(await admitted(sim, 2)).toBe(2);
      await clock.advance(500); // half a token at 1/s
      sim.setRate(10, 2);
      // At 10/s over those 500 ms the bucket would be full: it holds half a token.
      expect(await admitted(sim, 1)).toBe(0);
      await clock.advance(50); // another half at 10/s
      expect(await admitted(sim, 2)).toBe(1);
    });

    it('caps what the bucket holds at a smaller burst, and defaults the burst as the constructor does', async () => {
      const { clock, sim } = setup({ maxCallsPerSecond: 10, burst: 5 });
      sim.setRate(10, 2);
      expect(await admitted(sim, 5)).toBe(2);
      sim.setRate(100); // burst: 100 / 20 = 5
      await clock.advance(1_000);
      expect(await admitted(sim, 10)).toBe(5);
    });

    it('refuses a negative rate and a burst below one call', () => {
      const { sim } = setup();
      expect(() => sim.setRate(-1)).toThrow(RangeError);
      expect(() => sim.setRate(Number.NaN)).toThrow(RangeError);
      expect(() => sim.setRate(5, 0.5)).toThrow(RangeError);
    });
  });

  describe('injected failures', () => {
    it('fails the next n creates with a retryable error, then creates again', async () => {
      const { sim } = setup();
      sim.failCreates(2);
      for (let i = 0; i < 2; i++) {
        const err = await thrown(sim.create(request('i-1')));
        expect(err).toBeInstanceOf(Error);
        expect(err).not.toBeInstanceOf(PermanentError);
        expect(isRetryable(err)).toBe(true);
      }
      expect(sim.instances()).toEqual([]);
      const created = await sim.create(request('i-1'));
      expect(created.status).toBe('running');
      expect(sim.instances()).toHaveLength(1);
      expect(sim.stats.failed).toBe(2);
    });

    it('fails creates with a PermanentError when asked', async () => {
      const { sim } = setup();
      sim.failCreates(1, { permanent: true });
      const err = await thrown(sim.create(request('i-1')));
      expect(err).toBeInstanceOf(PermanentError);
      expect(isRetryable(err)).toBe(false);
      expect(sim.instances()).toEqual([]);
    });

    it('fails only the operations named with failNext', async () => {
      const { sim } = setup();
      const { providerId } = await sim.create(request('i-1'));
      sim.failNext(['status', 'delete'], 1);
      await expect(sim.list({})).resolves.toHaveLength(1);
      await expect(sim.status(providerId)).rejects.toThrow(/injected failure/);
      // The fault was used up by the status call.
      await expect(sim.delete(providerId)).resolves.toBeUndefined();
      expect(sim.instances()).toEqual([]);
    });

    it('fails setTags when asked', async () => {
      const { sim } = setup();
      const { providerId } = await sim.create(request('i-1'));
      sim.failNext('setTags', 1);
      await expect(sim.setTags(providerId, { a: 'b' })).rejects.toThrow(/injected failure/);
      expect(sim.instances()[0]!.tags.a).toBeUndefined();
      await sim.setTags(providerId, { a: 'b' });
      expect(sim.instances()[0]!.tags.a).toBe('b');
    });

    it('refuses the next n calls named with throttleNext with a ThrottledError, leaving the rate limit alone', async () => {
      const { sim } = setup();
      const { providerId } = await sim.create(request('i-1'));
      sim.throttleNext(['delete', 'setTags'], 2);
      await expect(sim.setTags(providerId, { a: 'b' })).rejects.toBeInstanceOf(ThrottledError);
      await expect(sim.list({})).resolves.toHaveLength(1);
      const err = await thrown(sim.delete(providerId));
      expect(err).toBeInstanceOf(ThrottledError);
      expect(isRetryable(err)).toBe(true);
      expect(sim.stats.throttled).toBe(2);
      expect(sim.instances()).toHaveLength(1);
      await expect(sim.delete(providerId)).resolves.toBeUndefined();
    });

    it('forgets planned faults on clearFaults', async () => {
      const { sim } = setup();
      sim.failCreates(5);
      sim.clearFaults();
      await expect(sim.create(request('i-1'))).resolves.toMatchObject({ status: 'running' });
    });
  });

  describe('status, vanish and tags', () => {
    it('sets an instance status by provider id and by Drover instance id', async () => {
      const { sim } = setup();
      const a = await sim.create(request('i-a'));
      const b = await sim.create(request('i-b'));
      sim.setStatus(a.providerId, 'stopped');
      sim.setStatus('i-b', 'suspended');
      expect(await sim.status(a.providerId)).toBe('stopped');
      expect(await sim.status(b.providerId)).toBe('suspended');
      expect(() => sim.setStatus('unknown', 'stopped')).toThrow(InstanceNotFoundError);
    });

    it('finds an instance by either id', async () => {
      const { sim } = setup();
      const a = await sim.create(request('i-a'));
      expect(sim.find(a.providerId)?.providerId).toBe(a.providerId);
      expect(sim.find('i-a')?.providerId).toBe(a.providerId);
      expect(sim.find('nope')).toBeUndefined();
    });

    it('makes a vanished instance unknown to status and delete', async () => {
      const { sim } = setup();
      const a = await sim.create(request('i-a'));
      const b = await sim.create(request('i-b'));
      sim.vanish(a.providerId);
      sim.vanish('i-b');
      for (const id of [a.providerId, b.providerId]) {
        const statusErr = await thrown(sim.status(id));
        expect(statusErr).toBeInstanceOf(InstanceNotFoundError);
        expect((statusErr as InstanceNotFoundError).providerId).toBe(id);
        expect(isRetryable(statusErr)).toBe(false);
        await expect(sim.delete(id)).rejects.toBeInstanceOf(InstanceNotFoundError);
        await expect(sim.setTags(id, { a: 'b' })).rejects.toBeInstanceOf(InstanceNotFoundError);
      }
      expect(await sim.list({})).toEqual([]);
      expect(sim.instances()).toEqual([]);
      expect(() => sim.vanish(a.providerId)).toThrow(InstanceNotFoundError);
    });

    it('says an instance it deleted is not found afterwards', async () => {
      const { sim } = setup();
      const { providerId } = await sim.create(request('i-1'));
      await sim.delete(providerId);
      await expect(sim.status(providerId)).rejects.toBeInstanceOf(InstanceNotFoundError);
      await expect(sim.delete(providerId)).rejects.toBeInstanceOf(InstanceNotFoundError);
    });

    it('lists only instances whose tags include every requested tag', async () => {
      const { sim } = setup();
      await sim.create(request('a-web', { [TAG.tenant]: 'a', [TAG.group]: 'web' }));
      await sim.create(request('a-api', { [TAG.tenant]: 'a', [TAG.group]: 'api' }));
      await sim.create(request('b-web', { [TAG.tenant]: 'b', [TAG.group]: 'web' }));
      const ids = async (tags: Record<string, string>): Promise<string[]> =>
        (await sim.list(tags)).map((i) => i.tags[TAG.instanceId] ?? '').sort();
      expect(await ids({})).toEqual(['a-api', 'a-web', 'b-web']);
      expect(await ids({ [TAG.tenant]: 'a' })).toEqual(['a-api', 'a-web']);
      expect(await ids({ [TAG.group]: 'web' })).toEqual(['a-web', 'b-web']);
      expect(await ids({ [TAG.tenant]: 'a', [TAG.group]: 'web' })).toEqual(['a-web']);
      expect(await ids({ [TAG.tenant]: 'c' })).toEqual([]);
    });

    it('adds and overwrites tags with setTags, keeping the others', async () => {
      const { sim } = setup();
      const { providerId } = await sim.create(request('i-1', { keep: 'me', change: 'old' }));
      await sim.setTags(providerId, { change: 'new', [TAG.drainReason]: 'expiry' });
      const tags = sim.instances()[0]!.tags;
      expect(tags).toMatchObject({ keep: 'me', change: 'new', [TAG.drainReason]: 'expiry', [TAG.instanceId]: 'i-1' });
      expect(await sim.list({ [TAG.drainReason]: 'expiry' })).toHaveLength(1);
    });

    it('keeps an injected instance, findable by its tags', async () => {
      const { sim } = setup();
      sim.inject({ providerId: 'leak-1', status: 'running', tags: { [TAG.instanceId]: 'ghost' }, idempotencyKey: 'ghost' });
      expect(await sim.status('leak-1')).toBe('running');
      expect(sim.find('ghost')?.providerId).toBe('leak-1');
      // Its idempotency key is taken: a create with it returns the injected instance.
      expect((await sim.create(request('ghost'))).providerId).toBe('leak-1');
      expect(sim.instances()).toHaveLength(1);
    });
  });

  describe('observation', () => {
    it('reports each completed call with its outcome', async () => {
      const { sim } = setup({ maxCallsPerSecond: 1, burst: 2 });
      const calls: SimCall[] = [];
      const off = sim.onCall((c) => calls.push(c));
      const { providerId } = await sim.create(request('i-1'));
      sim.failNext('status', 1);
      await expect(sim.status(providerId)).rejects.toThrow();
      await expect(sim.list({})).rejects.toBeInstanceOf(ThrottledError);
      off();
      await expect(sim.list({})).rejects.toBeInstanceOf(ThrottledError);
      expect(calls.map((c) => [c.op, c.outcome])).toEqual([
        ['create', 'ok'],
        ['status', 'error'],
        ['list', 'throttled'],
      ]);
      expect(calls[0]).toMatchObject({ providerId, idempotencyKey: 'i-1', at: T0 });
    });

    it('reports each call as it arrives, before its latency', async () => {
      const { clock, sim } = setup({ createLatencyMs: 100 });
      const starts: SimCall[] = [];
      sim.onCallStart((c) => starts.push(c));
      const pending = sim.create(request('i-1'));
      expect(starts.map((c) => [c.op, c.at])).toEqual([['create', T0]]);
      await clock.advance(100);
      await pending;
    });

    it('counts calls by operation', async () => {
      const { sim } = setup();
      const { providerId } = await sim.create(request('i-1'));
      await sim.status(providerId);
      await sim.status(providerId);
      await sim.list({});
      await sim.setTags(providerId, { a: 'b' });
      await sim.delete(providerId);
      expect(sim.stats).toMatchObject({ create: 1, status: 2, list: 1, setTags: 1, delete: 1, throttled: 0, failed: 0 });
    });
  });
});
