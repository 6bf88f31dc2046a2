import { describe, expect, it } from 'vitest';
import { Priority } from '../../src/queue/priority.js';
import { KeyedWorkQueue, type KeyedWorkQueueOptions } from '../../src/queue/work-queue.js';

class Deferred<T = void> {
  readonly promise: Promise<T>;
  resolve!: (value: T) => void;
  reject!: (err: unknown) => void;
  constructor() {
    this.promise = new Promise<T>((resolve, reject) => {
      this.resolve = resolve;
      this.reject = reject;
    });
  }
}

/** Lets pending promise callbacks run (one turn of the event loop; not a timed wait). */
async function flush(): Promise<void> {
  for (let i = 0; i < 3; i++) await new Promise<void>((resolve) => setImmediate(resolve));
}

interface Item {
  name: string;
  count: number;
}

interface Run {
  /** The key, or '*' for the barrier. */
  key: string;
  items: Item[];
  finish: Deferred;
}

/**
 * Handlers that block until the test finishes them, recording which runs are in progress, the
 * most runs of one key ever in progress at once, and the order runs started in.
 */
class Workers {
  readonly runs: Run[] = [];
  readonly errors: Array<{ key: string | null; error: unknown }> = [];
  readonly inProgress = new Map<string, number>();
  maxPerKey = 0;
  maxTotal = 0;
  total = 0;
  /** Keys whose runs end at once instead of waiting to be finished. */
  readonly autoFinish = new Set<string>();
  private startWaiters: Array<{ key: string; nth: number; deferred: Deferred<Run> }> = [];

  readonly queue: KeyedWorkQueue<Item>;

  constructor(options: Partial<KeyedWorkQueueOptions<Item>> = {}) {
    this.queue = new KeyedWorkQueue<Item>({
      concurrency: 4,
      handler: (key, items) => this.run(key, items),
      barrierHandler: (items) => this.run('*', items),
      merge: (queued, incoming) => ({ name: queued.name, count: queued.count + incoming.count }),
      onError: (key, error) => this.errors.push({ key, error }),
      now: () => 0,
      ...options,
    });
  }

  get order(): string[] {
    return this.runs.map((r) => r.key);
  }

  runsOf(key: string): Run[] {
    return this.runs.filter((r) => r.key === key);
  }

  /** The most recent run of `key`, which must exist. */
  last(key: string): Run {
    const runs = this.runsOf(key);
    const run = runs[runs.length - 1];
    if (!run) throw new Error(`${key} has not run`);
    return run;
  }

  /** Resolves when `key` has started its `nth` run (1-based). */
  started(key: string, nth = 1): Promise<Run> {
    const existing = this.runsOf(key)[nth - 1];
    if (existing) return Promise.resolve(existing);
    const deferred = new Deferred<Run>();
    this.startWaiters.push({ key, nth, deferred });
    return deferred.promise;
  }

  /** Finishes the current run of `key` and lets the queue move on. */
  async finish(key: string, error?: Error): Promise<void> {
    const run = this.last(key);
    if (error) run.finish.reject(error);
    else run.finish.resolve();
    await flush();
  }

  private async run(key: string, items: Item[]): Promise<void> {
    const count = (this.inProgress.get(key) ?? 0) + 1;
    this.inProgress.set(key, count);
    this.maxPerKey = Math.max(this.maxPerKey, count);
    this.total++;
    this.maxTotal = Math.max(this.maxTotal, this.total);
    const run: Run = { key, items, finish: new Deferred() };
    this.runs.push(run);
    const nth = this.runsOf(key).length;
    this.startWaiters = this.startWaiters.filter((w) => {
      if (w.key !== key || w.nth !== nth) return true;
      w.deferred.resolve(run);
      return false;
    });
    try {
      if (!this.autoFinish.has(key)) await run.finish.promise;
    } finally {
      this.inProgress.set(key, (this.inProgress.get(key) ?? 1) - 1);
      this.total--;
    }
  }
}

const item = (name: string, count = 1): Item => ({ name, count });

describe('KeyedWorkQueue', () => {
  describe('coalescing', () => {
    it('holds one item per (key, coalescing key) however many events arrive', async () => {
      const w = new Workers();
      for (const key of ['a', 'b', 'c']) w.autoFinish.add(key);
      w.queue.pause();
      for (let i = 0; i < 10_000; i++) {
        const key = ['a', 'b', 'c'][i % 3]!;
        const kind = i % 2 === 0 ? 'tick' : 'health';
        w.queue.add(key, kind, item(kind), Priority.normal);
      }
      expect(w.queue.itemCount).toBe(6);
      expect(w.queue.depth).toBe(3);
      expect(w.runs).toEqual([]);

      w.queue.resume();
      await w.queue.idle();
      expect(w.order.sort()).toEqual(['a', 'b', 'c']);
      // Nothing is dropped: the merge function folded every event into the items handled.
      const handled = w.runs.flatMap((r) => r.items).reduce((sum, i) => sum + i.count, 0);
      expect(handled).toBe(10_000);
      expect(w.last('a').items.map((i) => i.name).sort()).toEqual(['health', 'tick']);
    });

    it('stays bounded while keys are busy and events keep coming', async () => {
      const w = new Workers({ concurrency: 3 });
      for (const key of ['a', 'b', 'c']) w.queue.add(key, 'first', item('first'), Priority.normal);
      for (const key of ['a', 'b', 'c']) await w.started(key);
      for (let i = 0; i < 10_000; i++) {
        w.queue.add(['a', 'b', 'c'][i % 3]!, `kind-${i % 4}`, item(`kind-${i % 4}`), Priority.normal);
        expect(w.queue.itemCount).toBeLessThanOrEqual(12);
      }
      // Each key is busy with its first run; the rest wait, coalesced, for the next run.
      expect(w.order).toEqual(['a', 'b', 'c']);
      expect(w.queue.itemCount).toBe(12);
      for (const key of ['a', 'b', 'c']) w.autoFinish.add(key);
      for (const key of ['a', 'b', 'c']) await w.finish(key);
      await w.queue.idle();
      const handled = w.runs.flatMap((r) => r.items).reduce((sum, i) => sum + i.count, 0);
      expect(handled).toBe(10_003);
      expect(w.queue.itemCount).toBe(0);
    });

    it('starts work on the next turn, so items added in one turn make one run per key (one I/O batch, one plan)', async () => {
      const w = new Workers();
      for (const key of ['a', 'b']) w.autoFinish.add(key);
      for (let i = 0; i < 100; i++) w.queue.add(i % 2 === 0 ? 'a' : 'b', `instance-${i}`, item(`instance-${i}`), Priority.normal);
      expect(w.order).toEqual([]);
      await w.queue.idle();
      expect(w.order).toEqual(['a', 'b']);
      expect(w.last('a').items).toHaveLength(50);
      expect(w.last('b').items).toHaveLength(50);
    });

    it('uses the merge function on a repeated coalescing key', async () => {
      const merges: Array<[string, string]> = [];
      const w = new Workers({
        merge: (queued, incoming) => {
          merges.push([queued.name, incoming.name]);
          return { name: `${queued.name}+${incoming.name}`, count: queued.count + incoming.count };
        },
      });
      w.autoFinish.add('k');
      w.queue.pause();
      w.queue.add('k', 'x', item('first'), Priority.normal);
      w.queue.add('k', 'x', item('second'), Priority.normal);
      w.queue.add('k', 'x', item('third'), Priority.normal);
      w.queue.add('k', 'y', item('other'), Priority.normal);
      w.queue.resume();
      await w.queue.idle();
      expect(merges).toEqual([
        ['first', 'second'],
        ['first+second', 'third'],
      ]);
      expect(w.runs).toHaveLength(1);
      expect(w.runs[0]!.items).toEqual([
        { name: 'first+second+third', count: 3 },
        { name: 'other', count: 1 },
      ]);
    });

    it('keeps the newest item when there is no merge function', async () => {
      const w = new Workers({ merge: undefined });
      w.autoFinish.add('k');
      w.queue.pause();
      w.queue.add('k', 'x', item('old'), Priority.normal);
      w.queue.add('k', 'x', item('new'), Priority.normal);
      expect(w.queue.itemCount).toBe(1);
      w.queue.resume();
      await w.queue.idle();
      expect(w.runs[0]!.items).toEqual([item('new')]);
    });

    it('tells an observer whether an added item coalesced', () => {
      const added: Array<[string, boolean]> = [];
      const w = new Workers({ observer: { added: (key, coalesced) => added.push([key, coalesced]) } });
      w.queue.pause();
      w.queue.add('k', 'x', item('a'), Priority.normal);
      w.queue.add('k', 'x', item('b'), Priority.normal);
      w.queue.add('k', 'y', item('c'), Priority.normal);
      w.queue.addBarrier('resync', item('d'));
      w.queue.addBarrier('resync', item('e'));
      expect(added).toEqual([
        ['k', false],
        ['k', true],
        ['k', false],
        ['*', false],
        ['*', true],
      ]);
    });
  });

  describe('one worker per key', () => {
    it('never runs a key twice at once; items that arrive meanwhile run in the next batch', async () => {
      const w = new Workers();
      w.queue.add('k', 'e1', item('e1'), Priority.normal);
      const first = await w.started('k');
      expect(first.items).toEqual([item('e1')]);

      w.queue.add('k', 'e2', item('e2'), Priority.urgent);
      w.queue.add('k', 'e3', item('e3'), Priority.normal);
      await flush();
      expect(w.runsOf('k')).toHaveLength(1);
      expect(w.queue.active).toBe(1);
      expect(w.queue.itemCount).toBe(2);

      const second = w.started('k', 2);
      await w.finish('k');
      expect((await second).items.map((i) => i.name)).toEqual(['e2', 'e3']);
      w.queue.add('k', 'e4', item('e4'), Priority.normal);
      await w.finish('k');
      await w.started('k', 3);
      await w.finish('k');
      await w.queue.idle();

      expect(w.maxPerKey).toBe(1);
      expect(w.runsOf('k').map((r) => r.items.map((i) => i.name))).toEqual([['e1'], ['e2', 'e3'], ['e4']]);
    });

    it('keeps one worker per key under many interleaved adds', async () => {
      const w = new Workers({ concurrency: 8 });
      const keys = ['a', 'b', 'c', 'd'];
      for (let round = 0; round < 20; round++) {
        for (const key of keys) w.queue.add(key, `e${round % 3}`, item(`e${round}`), round % 2 === 0 ? Priority.urgent : Priority.bulk);
        await flush();
        for (const key of keys) if (w.runsOf(key).length > 0 && round % 3 === 0) await w.finish(key);
      }
      for (const key of keys) w.autoFinish.add(key);
      for (const key of keys) await w.finish(key);
      await w.queue.idle();
      expect(w.maxPerKey).toBe(1);
      for (const key of keys) expect(w.runsOf(key).length).toBeGreaterThan(1);
    });
  });

  describe('concurrency between keys', () => {
    it('runs different keys at once, up to the concurrency', async () => {
      const w = new Workers({ concurrency: 2 });
      w.queue.add('a', 'e', item('a'), Priority.normal);
      w.queue.add('b', 'e', item('b'), Priority.normal);
      w.queue.add('c', 'e', item('c'), Priority.normal);
      await Promise.all([w.started('a'), w.started('b')]);
      await flush();
      expect(w.total).toBe(2);
      expect(w.queue.active).toBe(2);
      expect(w.queue.depth).toBe(1);
      expect(w.runsOf('c')).toEqual([]);

      await w.finish('a');
      await w.started('c');
      expect(w.total).toBe(2);
      await w.finish('b');
      await w.finish('c');
      await w.queue.idle();
      expect(w.maxTotal).toBe(2);
    });
  });

  describe('priority', () => {
    it('starts ready keys urgent first, even when bulk ones were added first', async () => {
      const w = new Workers({ concurrency: 1 });
      w.queue.add('blocker', 'e', item('x'), Priority.normal);
      await w.started('blocker');
      for (const key of ['bulk-1', 'bulk-2', 'normal-1', 'urgent-1', 'high-1', 'urgent-2']) w.autoFinish.add(key);
      w.queue.add('bulk-1', 'e', item('x'), Priority.bulk);
      w.queue.add('bulk-2', 'e', item('x'), Priority.bulk);
      w.queue.add('normal-1', 'e', item('x'), Priority.normal);
      w.queue.add('urgent-1', 'e', item('x'), Priority.urgent);
      w.queue.add('high-1', 'e', item('x'), Priority.high);
      w.queue.add('urgent-2', 'e', item('x'), Priority.urgent);
      await w.finish('blocker');
      await w.queue.idle();
      expect(w.order).toEqual(['blocker', 'urgent-1', 'urgent-2', 'high-1', 'normal-1', 'bulk-1', 'bulk-2']);
    });

    it('moves a waiting key up when an urgent item arrives for it', async () => {
      const w = new Workers({ concurrency: 1 });
      w.queue.add('blocker', 'e', item('x'), Priority.normal);
      await w.started('blocker');
      for (const key of ['early', 'late']) w.autoFinish.add(key);
      w.queue.add('early', 'e', item('x'), Priority.normal);
      w.queue.add('late', 'e', item('x'), Priority.bulk);
      w.queue.add('late', 'death', item('x'), Priority.urgent);
      expect(w.queue.depth).toBe(2);
      await w.finish('blocker');
      await w.queue.idle();
      expect(w.order).toEqual(['blocker', 'late', 'early']);
      expect(w.runsOf('late')).toHaveLength(1);
    });

    it('does not lower a waiting key when a bulk item arrives for it', async () => {
      const w = new Workers({ concurrency: 1 });
      w.queue.add('blocker', 'e', item('x'), Priority.normal);
      await w.started('blocker');
      for (const key of ['normal', 'urgent']) w.autoFinish.add(key);
      w.queue.add('normal', 'e', item('x'), Priority.normal);
      w.queue.add('urgent', 'e', item('x'), Priority.urgent);
      w.queue.add('urgent', 'more', item('x'), Priority.bulk);
      await w.finish('blocker');
      await w.queue.idle();
      expect(w.order).toEqual(['blocker', 'urgent', 'normal']);
    });

    it('gives the next batch of a busy key the priority of the items that arrived while it ran', async () => {
      const w = new Workers({ concurrency: 1 });
      w.queue.add('busy', 'e', item('x'), Priority.bulk);
      await w.started('busy');
      w.autoFinish.add('waiting');
      w.queue.add('waiting', 'e', item('x'), Priority.normal);
      w.queue.add('busy', 'death', item('x'), Priority.urgent);
      w.autoFinish.add('busy');
      await w.finish('busy');
      await w.queue.idle();
      expect(w.order).toEqual(['busy', 'busy', 'waiting']);
    });
  });

  describe('barrier', () => {
    it('waits for running keys, runs alone, and runs keys added meanwhile after it', async () => {
      const w = new Workers({ concurrency: 4 });
      w.queue.add('a', 'e', item('a'), Priority.normal);
      w.queue.add('b', 'e', item('b'), Priority.normal);
      await Promise.all([w.started('a'), w.started('b')]);

      w.queue.addBarrier('resync', item('resync'));
      w.queue.add('c', 'e', item('c'), Priority.urgent);
      await flush();
      expect(w.runsOf('*')).toEqual([]);
      expect(w.runsOf('c')).toEqual([]);

      await w.finish('a');
      expect(w.runsOf('*')).toEqual([]);
      expect(w.runsOf('c')).toEqual([]);

      await w.finish('b');
      const barrier = await w.started('*');
      expect(barrier.items).toEqual([item('resync')]);
      expect(w.total).toBe(1);

      // Keys added while the barrier runs wait for it too.
      w.queue.add('d', 'e', item('d'), Priority.urgent);
      await flush();
      expect(w.runsOf('c')).toEqual([]);
      expect(w.runsOf('d')).toEqual([]);

      w.autoFinish.add('c');
      w.autoFinish.add('d');
      await w.finish('*');
      await w.queue.idle();
      expect(w.order).toEqual(['a', 'b', '*', 'c', 'd']);
      expect(w.maxTotal).toBe(2);
    });

    it('runs at once when nothing is running, and coalesces barrier items', async () => {
      const w = new Workers();
      w.autoFinish.add('*');
      w.queue.pause();
      w.queue.addBarrier('resync', item('r', 1));
      w.queue.addBarrier('resync', item('r', 1));
      w.queue.addBarrier('other', item('o', 1));
      expect(w.queue.itemCount).toBe(2);
      expect(w.queue.depth).toBe(1);
      w.queue.resume();
      await w.queue.idle();
      expect(w.runsOf('*')).toHaveLength(1);
      expect(w.runs[0]!.items).toEqual([
        { name: 'r', count: 2 },
        { name: 'o', count: 1 },
      ]);
    });

    it('reports a failing barrier handler with a null key and carries on', async () => {
      const w = new Workers();
      w.queue.addBarrier('resync', item('r'));
      await w.started('*');
      w.autoFinish.add('k');
      w.queue.add('k', 'e', item('k'), Priority.normal);
      await w.finish('*', new Error('resync failed'));
      await w.queue.idle();
      expect(w.errors).toHaveLength(1);
      expect(w.errors[0]!.key).toBeNull();
      expect((w.errors[0]!.error as Error).message).toBe('resync failed');
      expect(w.runsOf('k')).toHaveLength(1);
    });
  });

  describe('idle', () => {
    it('resolves at once when nothing is queued or running', async () => {
      const w = new Workers();
      expect(w.queue.isIdle()).toBe(true);
      await w.queue.idle();
    });

    it('resolves only when every queued and running item is done', async () => {
      const w = new Workers({ concurrency: 1 });
      w.queue.add('a', 'e', item('a'), Priority.normal);
      w.queue.add('b', 'e', item('b'), Priority.normal);
      let idle = false;
      void w.queue.idle().then(() => {
        idle = true;
      });

      await w.started('a');
      await flush();
      expect(idle).toBe(false);
      await w.finish('a');
      await w.started('b');
      expect(idle).toBe(false);
      expect(w.queue.isIdle()).toBe(false);
      w.queue.add('a', 'again', item('a2'), Priority.normal);
      await w.finish('b');
      await w.started('a', 2);
      expect(idle).toBe(false);
      await w.finish('a');
      await flush();
      expect(idle).toBe(true);
      expect(w.queue.isIdle()).toBe(true);
      expect(w.queue.active).toBe(0);
      expect(w.queue.depth).toBe(0);
    });

    it('waits for a pending barrier', async () => {
      const w = new Workers();
      w.queue.add('a', 'e', item('a'), Priority.normal);
      await w.started('a');
      w.queue.addBarrier('r', item('r'));
      let idle = false;
      void w.queue.idle().then(() => {
        idle = true;
      });
      await w.finish('a');
      await w.started('*');
      expect(idle).toBe(false);
      await w.finish('*');
      expect(idle).toBe(true);
    });
  });

  describe('errors', () => {
    it('reports a rejected handler to onError with its key and carries on with the key and others', async () => {
      const w = new Workers({ concurrency: 1 });
      w.queue.add('a', 'e', item('a'), Priority.normal);
      await w.started('a');
      w.autoFinish.add('b');
      w.queue.add('a', 'e', item('a2'), Priority.normal);
      w.queue.add('b', 'e', item('b'), Priority.normal);
      const failure = new Error('boom');
      w.autoFinish.add('a');
      await w.finish('a', failure);
      await w.queue.idle();
      expect(w.errors).toEqual([{ key: 'a', error: failure }]);
      expect(w.order).toEqual(['a', 'b', 'a']);
      expect(w.runsOf('a')[1]!.items).toEqual([item('a2')]);
    });

    it('reports a handler that throws before returning a promise, and carries on', async () => {
      const errors: Array<{ key: string | null; error: unknown }> = [];
      const handled: string[] = [];
      const failure = new Error('sync boom');
      const queue = new KeyedWorkQueue<Item>({
        concurrency: 1,
        handler: (key) => {
          if (key === 'bad') throw failure;
          handled.push(key);
          return Promise.resolve();
        },
        barrierHandler: () => Promise.resolve(),
        onError: (key, error) => errors.push({ key, error }),
        now: () => 0,
      });
      expect(() => queue.add('bad', 'e', item('x'), Priority.normal)).not.toThrow();
      queue.add('good', 'e', item('y'), Priority.normal);
      await queue.idle();
      expect(errors).toEqual([{ key: 'bad', error: failure }]);
      expect(handled).toEqual(['good']);
      expect(queue.active).toBe(0);
    });

    it('tells an observer when a run ends, with its error', async () => {
      const finished: Array<[string, unknown]> = [];
      const w = new Workers({ observer: { finished: (key, _ms, error) => finished.push([key, error]) } });
      w.queue.add('a', 'e', item('a'), Priority.normal);
      w.queue.add('b', 'e', item('b'), Priority.normal);
      await Promise.all([w.started('a'), w.started('b')]);
      const failure = new Error('x');
      await w.finish('a', failure);
      await w.finish('b');
      expect(finished).toEqual([
        ['a', failure],
        ['b', null],
      ]);
    });
  });

  describe('pause, resume and clear', () => {
    it('starts nothing while paused and everything on resume', async () => {
      const w = new Workers();
      w.autoFinish.add('a');
      w.queue.pause();
      w.queue.add('a', 'e', item('a'), Priority.normal);
      await flush();
      expect(w.runs).toEqual([]);
      expect(w.queue.depth).toBe(1);
      w.queue.resume();
      await w.queue.idle();
      expect(w.order).toEqual(['a']);
    });

    it('drops queued items on clear but lets running ones finish', async () => {
      const w = new Workers({ concurrency: 1 });
      w.queue.add('a', 'e', item('a'), Priority.normal);
      await w.started('a');
      w.queue.add('a', 'e', item('a2'), Priority.normal);
      w.queue.add('b', 'e', item('b'), Priority.normal);
      w.queue.addBarrier('r', item('r'));
      w.queue.clear();
      expect(w.queue.itemCount).toBe(0);
      expect(w.queue.depth).toBe(0);
      await w.finish('a');
      await w.queue.idle();
      expect(w.order).toEqual(['a']);
    });
  });

  describe('timings', () => {
    it('reports wait and run times from its now() function', async () => {
      let now = 1_000;
      const started: Array<[string, number]> = [];
      const durations: Array<[string, number]> = [];
      const w = new Workers({
        concurrency: 1,
        now: () => now,
        observer: { started: (key, wait) => started.push([key, wait]), finished: (key, ms) => durations.push([key, ms]) },
      });
      w.queue.add('a', 'e', item('a'), Priority.normal);
      await w.started('a');
      now = 1_100;
      w.queue.add('b', 'e', item('b'), Priority.normal);
      now = 1_350;
      expect(w.queue.oldestWaitMs()).toBe(250);
      expect(w.queue.runningSince()).toEqual([1_000]);
      await w.finish('a');
      await w.started('b');
      now = 1_400;
      await w.finish('b');
      expect(started).toEqual([
        ['a', 0],
        ['b', 250],
      ]);
      expect(durations).toEqual([
        ['a', 350],
        ['b', 50],
      ]);
      expect(w.queue.oldestWaitMs()).toBe(0);
    });
  });
});
