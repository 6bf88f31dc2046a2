import { describe, expect, it } from 'vitest';
import { ManualClock } from '../../src/clock/clock.js';
import { ThrottledError } from '../../src/errors/index.js';
import { CallGate, type CallKind } from '../../src/queue/call-gate.js';
import { Priority } from '../../src/queue/priority.js';

const T0 = Date.UTC(2030, 0, 1);

class Deferred<T = void> {
  readonly promise: Promise<T>;
  resolve!: (value: T) => void;
  constructor() {
    this.promise = new Promise<T>((resolve) => {
      this.resolve = resolve;
    });
  }
}

/** Lets pending promise callbacks run (event-loop turns, not a timed wait). */
async function flush(): Promise<void> {
  for (let i = 0; i < 3; i++) await new Promise<void>((resolve) => setImmediate(resolve));
}

interface Started {
  name: string;
  kind: CallKind;
  at: number;
}

/** A gate on a manual clock that records when (relative to T0) each call started. */
function setup(options: { maxCallsPerSecond?: number; maxConcurrent?: number; createGapMs?: number } = {}) {
  const clock = new ManualClock(new Date(T0));
  const gate = new CallGate({ clock, ...options });
  const started: Started[] = [];
  const call = (name: string, kind: CallKind = 'read', priority: Priority = Priority.normal, body?: () => Promise<void>): Promise<string> =>
    gate.run(kind, priority, async () => {
      started.push({ name, kind, at: clock.nowMs() - T0 });
      if (body) await body();
      return name;
    });
  return { clock, gate, started, call };
}

/** The most starts in any window of `windowMs` (starting at a start). */
function maxInWindow(times: number[], windowMs: number): number {
  let most = 0;
  for (const from of times) most = Math.max(most, times.filter((t) => t >= from && t < from + windowMs).length);
  return most;
}

describe('CallGate', () => {
  describe('rate limit', () => {
    it('starts a call at once when no limit is set', async () => {
      const { call, started } = setup();
      const results = await Promise.all([call('a'), call('b'), call('c')]);
      expect(results).toEqual(['a', 'b', 'c']);
      expect(started.map((s) => s.at)).toEqual([0, 0, 0]);
    });

    it('spaces call starts at 1/rate, letting at most two start together', async () => {
      const { clock, call, started } = setup({ maxCallsPerSecond: 10 });
      const calls = ['a', 'b', 'c', 'd', 'e'].map((n) => call(n));
      await clock.advance(1_000);
      await Promise.all(calls);
      const at = started.map((s) => s.at);
      expect(started.map((s) => s.name)).toEqual(['a', 'b', 'c', 'd', 'e']);
      expect(at[0]).toBe(0);
      for (let i = 1; i < at.length; i++) {
        // Never faster than one interval per call, beyond the one-call tolerance...
        expect(at[i]!).toBeGreaterThanOrEqual((i - 1) * 100);
        // ...and no slower than the rate allows.
        expect(at[i]!).toBeLessThanOrEqual(i * 100);
      }
      // Only the first two may share a start time.
      expect(new Set(at.slice(1)).size).toBe(at.length - 1);
    });

    it('does not start a waiting call before its slot', async () => {
      const { clock, call, started } = setup({ maxCallsPerSecond: 10 });
      void call('a');
      void call('b');
      void call('c');
      await flush();
      expect(started).toHaveLength(2);
      await clock.advance(99);
      expect(started).toHaveLength(2);
      await clock.advance(1);
      expect(started).toHaveLength(3);
    });

    it('never exceeds the rate (plus the one-call tolerance) over a long run', async () => {
      const rate = 20;
      const { clock, call, started } = setup({ maxCallsPerSecond: rate });
      const calls: Array<Promise<string>> = [];
      for (let i = 0; i < 60; i++) calls.push(call(`c${i}`));
      // More calls arrive part-way through.
      await clock.advance(777);
      for (let i = 60; i < 100; i++) calls.push(call(`c${i}`));
      await clock.advance(10_000);
      await Promise.all(calls);
      const times = started.map((s) => s.at);
      expect(times).toHaveLength(100);
      expect(maxInWindow(times, 1_000)).toBeLessThanOrEqual(rate + 1);
      // And it keeps up with the rate: 100 calls at 20/s take about 5 s, not much more.
      expect(Math.max(...times)).toBeLessThanOrEqual(100 * (1_000 / rate));
    });

    it('does not let calls arriving after a quiet spell burst beyond the tolerance', async () => {
      const rate = 10;
      const { clock, call, started } = setup({ maxCallsPerSecond: rate });
      await call('first');
      await clock.advance(5_000);
      const calls: Array<Promise<string>> = [];
      for (let i = 0; i < 30; i++) calls.push(call(`c${i}`));
      await clock.advance(5_000);
      await Promise.all(calls);
      const later = started.slice(1).map((s) => s.at);
      expect(maxInWindow(later, 1_000)).toBeLessThanOrEqual(rate + 1);
      expect(later.filter((t) => t === 5_000)).toHaveLength(2);
    });

    it('applies a new rate from configure()', async () => {
      const { clock, gate, call, started } = setup({ maxCallsPerSecond: 1 });
      const calls = ['a', 'b', 'c', 'd'].map((n) => call(n));
      await flush();
      expect(started).toHaveLength(2);
      gate.configure({ maxCallsPerSecond: 0 });
      await clock.advance(0);
      await Promise.all(calls);
      expect(started.map((s) => s.at)).toEqual([0, 0, 0, 0]);
    });
  });

  describe('priority', () => {
    it('starts urgent calls queued after bulk ones first', async () => {
      const { clock, call, started } = setup({ maxCallsPerSecond: 10 });
      const calls = ['b1', 'b2', 'b3', 'b4'].map((n) => call(n, 'read', Priority.bulk));
      calls.push(call('n1', 'read', Priority.normal));
      calls.push(call('u1', 'delete', Priority.urgent));
      calls.push(call('u2', 'read', Priority.urgent));
      await clock.advance(2_000);
      await Promise.all(calls);
      // b1 and b2 started at once, before the others were queued.
      expect(started.map((s) => s.name)).toEqual(['b1', 'b2', 'u1', 'u2', 'n1', 'b3', 'b4']);
    });

    it('starts urgent calls first when a concurrency slot frees', async () => {
      const { call, started } = setup({ maxConcurrent: 1 });
      const release = new Deferred();
      const calls = [call('blocker', 'read', Priority.normal, () => release.promise)];
      calls.push(call('bulk', 'read', Priority.bulk));
      calls.push(call('high', 'read', Priority.high));
      calls.push(call('urgent', 'read', Priority.urgent));
      await flush();
      expect(started.map((s) => s.name)).toEqual(['blocker']);
      release.resolve();
      await Promise.all(calls);
      expect(started.map((s) => s.name)).toEqual(['blocker', 'urgent', 'high', 'bulk']);
    });
  });

  describe('create spacing', () => {
    it('spaces creates at least createGapMs apart', async () => {
      const { clock, call, started } = setup({ createGapMs: 1_000 });
      const calls = ['c1', 'c2', 'c3'].map((n) => call(n, 'create'));
      await clock.advance(5_000);
      await Promise.all(calls);
      const at = started.map((s) => s.at);
      expect(at[0]).toBe(0);
      for (let i = 1; i < at.length; i++) expect(at[i]! - at[i - 1]!).toBeGreaterThanOrEqual(1_000);
      expect(at[2]).toBeLessThanOrEqual(2_000);
    });

    it('starts a delete queued behind waiting creates at once', async () => {
      const { clock, call, started } = setup({ createGapMs: 1_000 });
      const calls = ['c1', 'c2', 'c3'].map((n) => call(n, 'create'));
      calls.push(call('d1', 'delete'));
      calls.push(call('r1', 'read', Priority.bulk));
      await flush();
      expect(started.map((s) => s.name)).toEqual(['c1', 'd1', 'r1']);
      expect(started.every((s) => s.at === 0)).toBe(true);
      await clock.advance(5_000);
      await Promise.all(calls);
      expect(started.map((s) => s.name)).toEqual(['c1', 'd1', 'r1', 'c2', 'c3']);
    });

    it('says when the next create may start', async () => {
      const { gate, call } = setup({ createGapMs: 1_000 });
      expect(setup().gate.nextCreateAt()).toBeNull();
      await call('c1', 'create');
      expect(gate.nextCreateAt()).toBe(T0 + 1_000);
    });
  });

  describe('concurrency', () => {
    it('keeps at most maxConcurrent calls in flight', async () => {
      const { gate, call, started } = setup({ maxConcurrent: 3 });
      const releases: Deferred[] = [];
      let inFlight = 0;
      let most = 0;
      const calls: Array<Promise<string>> = [];
      for (let i = 0; i < 10; i++) {
        const release = new Deferred();
        releases.push(release);
        calls.push(
          call(`c${i}`, 'read', Priority.normal, async () => {
            inFlight++;
            most = Math.max(most, inFlight);
            await release.promise;
            inFlight--;
          }),
        );
      }
      await flush();
      expect(started).toHaveLength(3);
      expect(gate.stats()).toMatchObject({ waiting: 7, inFlight: 3, started: 3 });
      for (const release of releases) {
        release.resolve();
        await flush();
        expect(inFlight).toBeLessThanOrEqual(3);
      }
      await Promise.all(calls);
      expect(most).toBe(3);
      expect(started).toHaveLength(10);
      expect(gate.stats()).toMatchObject({ waiting: 0, inFlight: 0, started: 10 });
    });
  });

  describe('backOff', () => {
    it('holds every call for the given time when there is no rate limit', async () => {
      const { clock, gate, call, started } = setup();
      gate.backOff(500);
      const calls = [call('a'), call('b', 'delete', Priority.urgent)];
      await clock.advance(499);
      expect(started).toEqual([]);
      await clock.advance(1);
      await Promise.all(calls);
      expect(started.map((s) => s.at)).toEqual([500, 500]);
    });

    it('holds every call for the given time under a rate limit, then spaces them again', async () => {
      const { clock, gate, call, started } = setup({ maxCallsPerSecond: 10 });
      await call('before');
      gate.backOff(1_000);
      const calls = ['a', 'b', 'c'].map((n) => call(n));
      await clock.advance(999);
      expect(started.map((s) => s.name)).toEqual(['before']);
      await clock.advance(2_000);
      await Promise.all(calls);
      const at = started.slice(1).map((s) => s.at);
      expect(at[0]).toBeGreaterThanOrEqual(1_000);
      expect(maxInWindow(at, 1_000)).toBeLessThanOrEqual(11);
      expect(at[2]! - at[0]!).toBeGreaterThanOrEqual(100);
    });

    it('does not shorten a longer back-off already in force', async () => {
      const { clock, gate, call, started } = setup();
      gate.backOff(1_000);
      gate.backOff(200);
      const pending = call('a');
      await clock.advance(999);
      expect(started).toEqual([]);
      await clock.advance(1);
      await pending;
      expect(started[0]!.at).toBe(1_000);
    });
  });

  describe('results and errors', () => {
    it('resolves with what the call returns and rejects with what it throws', async () => {
      const { gate } = setup();
      await expect(gate.run('read', Priority.normal, async () => 42)).resolves.toBe(42);
      await expect(gate.run('read', Priority.normal, async () => Promise.reject(new Error('nope')))).rejects.toThrow('nope');
      await expect(
        gate.run('read', Priority.normal, () => {
          throw new Error('sync nope');
        }),
      ).rejects.toThrow('sync nope');
    });

    it('keeps going after a call fails', async () => {
      const { gate, call } = setup({ maxConcurrent: 1 });
      const failing = gate.run('read', Priority.normal, async () => Promise.reject(new Error('nope')));
      const next = call('next');
      await expect(failing).rejects.toThrow('nope');
      await expect(next).resolves.toBe('next');
      expect(gate.stats()).toMatchObject({ waiting: 0, inFlight: 0, started: 2 });
    });
  });

  describe('idle', () => {
    it('is idle with nothing queued', async () => {
      const { gate } = setup();
      expect(gate.isIdle()).toBe(true);
      expect(gate.hasDueWork()).toBe(false);
      await gate.idle();
    });

    it('resolves idle() only once calls in flight are done', async () => {
      const { gate, call } = setup();
      const release = new Deferred();
      const pending = call('a', 'read', Priority.normal, () => release.promise);
      let idle = false;
      void gate.idle().then(() => {
        idle = true;
      });
      await flush();
      expect(gate.isIdle()).toBe(false);
      expect(idle).toBe(false);
      release.resolve();
      await pending;
      await flush();
      expect(idle).toBe(true);
    });

    it('counts calls waiting for a future slot as idle (nothing is due)', async () => {
      const { clock, gate, call, started } = setup({ maxCallsPerSecond: 1 });
      const calls = ['a', 'b', 'c'].map((n) => call(n));
      await gate.idle();
      expect(started).toHaveLength(2);
      expect(gate.stats().waiting).toBe(1);
      expect(gate.hasDueWork()).toBe(false);
      await clock.advance(1_000);
      await Promise.all(calls);
      expect(started).toHaveLength(3);
    });
  });

  describe('adaptive rate', () => {
    /** A provider limit as EC2 keeps it: a token bucket per action, on the test's clock. */
    class Bucket {
      private tokens: number;
      private at: number;
      accepted = 0;
      refused = 0;
      constructor(
        private readonly clock: ManualClock,
        private readonly burst: number,
        public refillPerSecond: number,
      ) {
        this.tokens = burst;
        this.at = clock.nowMs();
      }
      take(): boolean {
        const now = this.clock.nowMs();
        this.tokens = Math.min(this.burst, this.tokens + ((now - this.at) * this.refillPerSecond) / 1000);
        this.at = now;
        if (this.tokens < 1) {
          this.refused++;
          return false;
        }
        this.tokens -= 1;
        this.accepted++;
        return true;
      }
    }

    /** Runs `count` creates through `gate` against `bucket`, advancing the clock in 10 ms steps; resolves with the settled results. */
    async function drive(clock: ManualClock, gate: CallGate, bucket: Bucket, count: number, limitMs: number) {
      let done = 0;
      const results = Array.from({ length: count }, () =>
        gate
          .run('create', Priority.bulk, async () => {
            if (!bucket.take()) throw new ThrottledError('RunInstances');
          })
          .then(
            () => 'ok' as const,
            (err: unknown) => err,
          )
          .finally(() => {
            done++;
          }),
      );
      const start = clock.nowMs();
      while (done < count && clock.nowMs() - start < limitMs) {
        await flush();
        await clock.advance(10);
      }
      return { results: await Promise.all(results), elapsedMs: clock.nowMs() - start };
    }

    it('holds a throttled kind near the provider\'s refill rate: every call succeeds, few are throttled, the time stays near the bucket\'s floor', async () => {
      const clock = new ManualClock(new Date(T0));
      const gate = new CallGate({ clock, adaptive: true });
      const bucket = new Bucket(clock, 50, 10);
      // B6's shape: 1,000 creates against a RunInstances bucket of burst 50 refilling 10/s.
      const { results, elapsedMs } = await drive(clock, gate, bucket, 1_000, 200_000);
      expect(results.every((r) => r === 'ok')).toBe(true);
      expect(bucket.accepted).toBe(1_000);
      // Floor: 50 at once, then 950 at 10/s = 95 s.
      expect(elapsedMs).toBeLessThanOrEqual(1.1 * 95_000);
      expect(bucket.refused).toBeLessThan(0.05 * 1_000);
      expect(gate.stats().throttled).toBe(bucket.refused);
      expect(gate.stats().adaptiveRates.create).toBeGreaterThan(5);
    });

    it('fails throttled calls at once without adaptive rate (the caller backs off)', async () => {
      const clock = new ManualClock(new Date(T0));
      const gate = new CallGate({ clock });
      const bucket = new Bucket(clock, 5, 1);
      const { results } = await drive(clock, gate, bucket, 20, 1_000);
      expect(results.filter((r) => r instanceof ThrottledError)).toHaveLength(15);
      expect(gate.stats().adaptiveRates).toEqual({});
    });

    it('creeps back up when the provider allows more, and limits only the throttled kind', async () => {
      const clock = new ManualClock(new Date(T0));
      const gate = new CallGate({ clock, adaptive: true });
      const bucket = new Bucket(clock, 10, 5);
      await drive(clock, gate, bucket, 100, 60_000);
      const slow = gate.stats().adaptiveRates.create ?? 0;
      expect(slow).toBeGreaterThan(2);
      expect(slow).toBeLessThan(15);
      bucket.refillPerSecond = 100;
      await drive(clock, gate, bucket, 600, 60_000);
      expect(gate.stats().adaptiveRates.create ?? 0).toBeGreaterThan(2 * slow);
      // Reads were never throttled: they are not held to the creates' rate.
      expect(gate.stats().adaptiveRates.read).toBeUndefined();
      const reads: number[] = [];
      await Promise.all(Array.from({ length: 50 }, () => gate.run('read', Priority.normal, async () => void reads.push(clock.nowMs()))));
      expect(new Set(reads).size).toBe(1);
    });

    it('keeps at most maxConcurrentCreates creates in flight while other calls pass', async () => {
      const clock = new ManualClock(new Date(T0));
      const gate = new CallGate({ clock, maxConcurrentCreates: 2 });
      const releases: Array<() => void> = [];
      let createsRunning = 0;
      let most = 0;
      const creates = Array.from({ length: 6 }, () =>
        gate.run('create', Priority.bulk, async () => {
          createsRunning++;
          most = Math.max(most, createsRunning);
          await new Promise<void>((resolve) => releases.push(resolve));
          createsRunning--;
        }),
      );
      const read = gate.run('read', Priority.bulk, async () => 'read');
      await flush();
      expect(createsRunning).toBe(2);
      expect(await read).toBe('read');
      while (releases.length > 0) {
        releases.shift()?.();
        await flush();
      }
      await Promise.all(creates);
      expect(most).toBe(2);
    });

    it('fails a call that is throttled more often than maxThrottleRetries', async () => {
      const clock = new ManualClock(new Date(T0));
      const gate = new CallGate({ clock, adaptive: true, maxThrottleRetries: 3 });
      let attempts = 0;
      const result = gate
        .run('delete', Priority.normal, async () => {
          attempts++;
          throw new ThrottledError('TerminateInstances');
        })
        .catch((err: unknown) => err);
      for (let i = 0; i < 200 && attempts < 4; i++) {
        await flush();
        await clock.advance(100);
      }
      expect(await result).toBeInstanceOf(ThrottledError);
      expect(attempts).toBe(4);
    });
  });

  describe('provider budget (rate-limit figures in answers)', () => {
    it('slows down before the provider\'s limit: no call refused, the reserve kept, the pace then the refill rate', async () => {
      const clock = new ManualClock(new Date(T0));
      const gate = new CallGate({ clock });
      // Hetzner's shape, scaled: 100 calls, one back a second; answers carry the figures.
      const limit = 100;
      let tokens = limit;
      let at = clock.nowMs();
      let refused = 0;
      let lowest = limit;
      const answer = (): void => {
        const now = clock.nowMs();
        tokens = Math.min(limit, tokens + (now - at) / 1000);
        at = now;
        const resetAtMs = now + (limit - tokens) * 1000;
        gate.observeBudget({ limit, remaining: Math.floor(tokens), resetAtMs });
      };
      let done = 0;
      const count = 160;
      for (let i = 0; i < count; i++) {
        void gate
          .run('read', Priority.normal, async () => {
            const now = clock.nowMs();
            tokens = Math.min(limit, tokens + (now - at) / 1000);
            at = now;
            if (tokens < 1) {
              refused++;
              answer();
              throw new ThrottledError('GET /servers');
            }
            tokens -= 1;
            lowest = Math.min(lowest, tokens);
            answer();
          })
          .catch(() => undefined)
          .finally(() => done++);
      }
      const start = clock.nowMs();
      while (done < count && clock.nowMs() - start < 300_000) {
        await flush();
        await clock.advance(100);
      }
      expect(done).toBe(count);
      expect(refused).toBe(0);
      // The reserve (2 % of 100 = 2) is never spent.
      expect(lowest).toBeGreaterThanOrEqual(1);
      // 98 at once, then the other 62 at the refill rate: about a minute, not all at once.
      const elapsed = clock.nowMs() - start;
      expect(elapsed).toBeGreaterThanOrEqual(55_000);
      expect(elapsed).toBeLessThanOrEqual(75_000);
    });

    it('ignores figures that make no sense', async () => {
      const clock = new ManualClock(new Date(T0));
      const gate = new CallGate({ clock });
      gate.observeBudget({ limit: 0, remaining: 0, resetAtMs: T0 });
      gate.observeBudget({ limit: 10, remaining: 11, resetAtMs: T0 });
      gate.observeBudget({ limit: 10, remaining: Number.NaN, resetAtMs: T0 });
      const results = await Promise.all(Array.from({ length: 20 }, (_, i) => gate.run('read', Priority.normal, async () => i)));
      expect(results).toHaveLength(20);
    });
  });
});
