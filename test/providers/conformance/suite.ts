/**
 * The Provider contract (src/providers/types.ts) as executable tests, shared by every provider.
 * A provider's test file calls `describeProviderConformance(name, setup)`; `setup` makes a fresh
 * `ConformanceTarget` for each test and the suite closes it afterwards.
 *
 * What is asserted is what Drover relies on, and why (the callers are the InstanceManager,
 * src/instances/instance-manager.ts, and the reconciler's executor, checks and provider sync,
 * src/reconciler/{executor,facts,sync}.ts):
 *
 * - create returns a provider id, a live status (pending or running) and the request's tags.
 * - create is idempotent on `idempotencyKey` (the Drover instance id), sequentially and
 *   concurrently: a timed-out create is retried with the same key, and must not leave a second
 *   instance behind.
 * - A create refused with a non-retryable error made no instance: after a permanent refusal of
 *   the only attempt the executor forgets the instance without looking for it.
 * - status of a new instance is pending or running at once, and reaches running. It is asked
 *   without `eventually`: a status call that says InstanceNotFoundError is acted on at once (the
 *   instance is forgotten and replaced), so a provider over an eventually consistent API must not
 *   report a just-created instance as not found.
 * - list(tags) returns exactly the instances whose tags include every given pair (sync lists by
 *   the shard tag; a delete of an unconfirmed create lists by the instance-id tag); each carries
 *   its provider id, status and tags. Instances of another shard or group are not returned.
 *   A listed instance may be in a terminal status (stopped, ...): Drover replaces it.
 * - After delete resolves, status eventually throws InstanceNotFoundError or returns a terminal
 *   status (both are "gone" to the reconciler: facts.ts records notFound, plan/classify.ts ends a
 *   delete on notFound and re-sends it on a terminal status), never pending or running again; and
 *   list eventually stops returning it. A deleted instance that list keeps returning, even as
 *   `terminated`, is taken by sync for a leak (its row is deleted) and deleted again on every
 *   resync: a provider over a cloud that shows terminated instances for a while filters them out.
 * - delete of an instance already deleted resolves or throws InstanceNotFoundError (the
 *   InstanceManager counts both as deleted); delete, status and setTags of an id that never
 *   existed throw InstanceNotFoundError, which is not retryable.
 * - setTags (optional) merges: the keys given are overwritten, the others kept. An empty value is
 *   stored as an empty value, not removed: a cancelled drain is written as empty
 *   drain-started-at / drain-deadline / drain-reason plus drain-cancelled-at
 *   (reconciler/operator-actions.ts), and sync tells "cleared" (present, empty) from "no record"
 *   (absent). Two tag writes in flight at once both land (drain tags are written fire-and-forget).
 * - Every TAG key round-trips with the longest values Drover writes (names are up to 63
 *   characters, times are ISO 8601 with milliseconds), within the provider's value limit.
 * - Errors are classified: a throttled call is a ThrottledError (the executor means to back the
 *   CallGate off on one), a transient failure is retryable, a definitive refusal is not (`isRetryable`). A
 *   create that failed transiently and is retried with the same key yields one instance.
 *
 * Not part of the contract: a create with the key of an instance already deleted may return the
 * deleted instance (sim) or make a new one (local); Drover never reuses an instance id, and a
 * late create that lands after a delete is found by sync as a leak and deleted.
 *
 * Eventual consistency: reads that may lag a write (list after create, delete or setTags; status
 * after delete) are polled with `eventually`, which calls the target's `settle()` between
 * attempts, a bounded number of times. Tests stay apart through a random shard tag of their own,
 * so a backend shared between tests (one fake cloud account) is fine; the suite lists nothing but
 * its own shard.
 */
import { randomBytes } from 'node:crypto';
import { afterEach, beforeEach, describe, expect, it, type TestContext } from 'vitest';
import { templateHash, type TemplateSpec } from '../../../src/config/index.js';
import { errorMessage, InstanceNotFoundError, isRetryable, ThrottledError } from '../../../src/errors/index.js';
import { isTerminalStatus, TAG, type Provider, type ProviderCreateRequest, type ProviderInstance } from '../../../src/providers/index.js';

/** The calls of the Provider interface. */
export type ProviderOperation = 'create' | 'delete' | 'status' | 'list' | 'setTags';

/**
 * Failures a target can make its backend produce, for the suite to check how the provider
 * classifies them:
 * - `throttled`: the API's rate limit refused the call (e.g. EC2 RequestLimitExceeded);
 * - `transient`: a failure that may pass (a 5xx, a reset connection, a timeout);
 * - `permanent`: a definitive refusal (bad request, quota, a missing image).
 */
export type InjectedFault = 'throttled' | 'transient' | 'permanent';

/** One provider, ready to be tested, with what the suite needs to drive it. */
export interface ConformanceTarget {
  provider: Provider;
  /** A template the provider creates instances from. */
  template: TemplateSpec;
  /** User data for every create (the local provider needs DROVER_SERVER and DROVER_AGENT_CREDENTIAL). */
  userData?: Record<string, string>;
  /**
   * One step of letting the backend move on: advance a manual clock (a fake cloud whose instances
   * go pending → running with time, whose lists catch up later), or wait one poll interval where
   * real processes or a real API are involved. `eventually` calls it between attempts.
   */
  settle(): Promise<void>;
  /** How many `settle()` steps `eventually` takes before it fails. Default 100. */
  maxSettles?: number;
  /**
   * Releases what the target made (processes, temp folders, servers). The suite has already
   * deleted, best effort, every instance it created.
   */
  close(): Promise<void>;
  limits?: {
    /** Longest tag value the provider stores (EC2: 256). Unbounded when absent. */
    maxTagValueLength?: number;
  };
  /** A provider id well-formed for this provider that names no instance. Default `i-0ffffffffffffff0`. */
  unknownProviderId?: string;
  /** A template the provider refuses before creating anything (a non-retryable error). Its test is skipped when absent. */
  invalidTemplate?: TemplateSpec;
  /**
   * Makes the next call of `op` fail with the given kind of failure, at the backend (so that the
   * provider's own classification is what is tested). Kinds a target leaves out are skipped.
   */
  faults?: { [K in InjectedFault]?: (op: ProviderOperation) => void | Promise<void> };
  /** Called with the idempotency key before each create the suite makes (e.g. to clean up processes carrying it after the test). */
  willCreate?(idempotencyKey: string): void;
}

const DEFAULT_MAX_SETTLES = 100;
const DEFAULT_UNKNOWN_ID = 'i-0ffffffffffffff0';

/** A Drover instance id, as the reconciler makes them (reconciler.ts: `i-` and 16 hex digits). */
function newInstanceId(): string {
  return `i-${randomBytes(8).toString('hex')}`;
}

/** A name as long as the config allows (1-63 characters: config/schema.ts). */
function longName(prefix: string): string {
  return `${prefix}-${'x'.repeat(63)}`.slice(0, 63);
}

/** The thrown value of a call expected to fail. */
async function thrown(call: Promise<unknown>): Promise<unknown> {
  return call.then(
    () => {
      throw new Error('expected the call to fail, and it resolved');
    },
    (err: unknown) => err,
  );
}

async function expectNotFound(call: Promise<unknown>): Promise<void> {
  const err = await thrown(call);
  expect(err, errorMessage(err)).toBeInstanceOf(InstanceNotFoundError);
  expect(isRetryable(err)).toBe(false);
}

export function describeProviderConformance(name: string, setup: () => Promise<ConformanceTarget>): void {
  describe(`${name} provider: the Provider contract`, () => {
    let t: ConformanceTarget;
    let p: Provider;
    /** This test's shard: every instance it makes carries it, and lists are scoped by it. */
    let shard: string;
    const created = new Set<string>();

    beforeEach(async () => {
      t = await setup();
      p = t.provider;
      shard = `conf-${randomBytes(4).toString('hex')}`;
    });

    afterEach(async () => {
      for (const providerId of created) {
        try {
          await p.delete(providerId);
        } catch {
          // Deleted by the test, or never made: cleanup is best effort.
        }
      }
      created.clear();
      await t.close();
    });

    /** Polls `probe` (assertions) until it passes, settling between attempts; fails after `maxSettles` steps. */
    async function eventually<T>(probe: () => Promise<T>): Promise<T> {
      const limit = t.maxSettles ?? DEFAULT_MAX_SETTLES;
      for (let attempt = 0; ; attempt++) {
        try {
          return await probe();
        } catch (err) {
          if (attempt >= limit) throw err;
        }
        await t.settle();
      }
    }

    /** The tags Drover's InstanceManager puts on a new instance (instance-manager.ts `instanceTags`). */
    function droverTags(instanceId: string, extra: Record<string, string> = {}): Record<string, string> {
      return {
        [TAG.shard]: shard,
        [TAG.tenant]: 'default',
        [TAG.group]: 'web',
        [TAG.instanceId]: instanceId,
        [TAG.templateHash]: templateHash(t.template),
        [TAG.templateName]: 'web-v1',
        [TAG.createdAt]: new Date(Date.UTC(2030, 0, 1, 12, 0, 0, 123)).toISOString(),
        ...extra,
      };
    }

    function request(extraTags: Record<string, string> = {}, instanceId = newInstanceId()): ProviderCreateRequest {
      return {
        idempotencyKey: instanceId,
        tags: droverTags(instanceId, extraTags),
        template: t.template,
        ...(t.userData ? { userData: t.userData } : {}),
      };
    }

    async function create(req: ProviderCreateRequest): Promise<ProviderInstance> {
      t.willCreate?.(req.idempotencyKey);
      const instance = await p.create(req);
      created.add(instance.providerId);
      return instance;
    }

    /** The instances carrying Drover instance id `instanceId` in this test's shard. */
    async function listById(instanceId: string): Promise<ProviderInstance[]> {
      return p.list({ [TAG.shard]: shard, [TAG.instanceId]: instanceId });
    }

    /** Eventually: the instance is listed, once, and carries (at least) `tags`. */
    async function listedWith(providerId: string, instanceId: string, tags: Record<string, string>): Promise<ProviderInstance> {
      return eventually(async () => {
        const found = await listById(instanceId);
        expect(found.map((i) => i.providerId)).toEqual([providerId]);
        expect(found[0]!.tags).toMatchObject(tags);
        return found[0]!;
      });
    }

    function setTagsOrSkip(ctx: TestContext): NonNullable<Provider['setTags']> {
      const setTags = p.setTags?.bind(p);
      if (!setTags) ctx.skip(`${name} has no setTags`);
      return setTags;
    }

    describe('create', () => {
      it('returns a provider id, a live status and every tag it was given', async () => {
        const req = request({ extra: 'value' });
        const instance = await create(req);
        expect(instance.providerId).toEqual(expect.any(String));
        expect(instance.providerId.length).toBeGreaterThan(0);
        expect(['pending', 'running']).toContain(instance.status);
        expect(instance.tags).toMatchObject(req.tags);
      });

      it('returns the same instance for a create repeated with the same idempotency key, and makes no second one', async () => {
        const req = request();
        const first = await create(req);
        const again = await create(req);
        expect(again.providerId).toBe(first.providerId);
        expect(again.tags).toMatchObject(req.tags);
        await listedWith(first.providerId, req.idempotencyKey, req.tags);
        await t.settle();
        expect((await listById(req.idempotencyKey)).map((i) => i.providerId)).toEqual([first.providerId]);
      });

      it('makes one instance for creates with the same idempotency key sent concurrently', async () => {
        const req = request();
        const results = await Promise.all(Array.from({ length: 5 }, () => create({ ...req, tags: { ...req.tags } })));
        const ids = new Set(results.map((r) => r.providerId));
        expect(ids.size).toBe(1);
        const [providerId] = [...ids];
        await listedWith(providerId!, req.idempotencyKey, req.tags);
        await t.settle();
        expect(await listById(req.idempotencyKey)).toHaveLength(1);
      });

      it('makes a distinct instance for each idempotency key, also concurrently', async () => {
        const reqs = [request(), request(), request()];
        const results = await Promise.all(reqs.map((r) => create(r)));
        expect(new Set(results.map((r) => r.providerId)).size).toBe(3);
        await eventually(async () => expect((await p.list({ [TAG.shard]: shard })).map((i) => i.providerId).sort()).toEqual(results.map((r) => r.providerId).sort()));
      });

      it("keeps the request's tags as they were at the call, not the caller's object", async () => {
        const req = request();
        const original = { ...req.tags };
        const instance = await create(req);
        req.tags[TAG.group] = 'changed-after-create';
        instance.tags[TAG.tenant] = 'changed-in-the-result';
        const listed = await listedWith(instance.providerId, req.idempotencyKey, original);
        expect(listed.tags[TAG.group]).toBe(original[TAG.group]);
        expect(listed.tags[TAG.tenant]).toBe(original[TAG.tenant]);
      });

      it('makes no instance when it refuses the template with a non-retryable error', async (ctx) => {
        if (!t.invalidTemplate) ctx.skip(`${name} names no invalid template`);
        const req = { ...request(), template: t.invalidTemplate! };
        t.willCreate?.(req.idempotencyKey);
        const err = await thrown(p.create(req));
        expect(isRetryable(err), errorMessage(err)).toBe(false);
        await t.settle();
        expect(await listById(req.idempotencyKey)).toEqual([]);
      });
    });

    describe('status', () => {
      it('is pending or running right after create, and reaches running', async () => {
        const { providerId } = await create(request());
        expect(['pending', 'running']).toContain(await p.status(providerId));
        await eventually(async () => expect(await p.status(providerId)).toBe('running'));
      });

      it('throws InstanceNotFoundError, not retryable, for an id that never existed', async () => {
        await expectNotFound(p.status(t.unknownProviderId ?? DEFAULT_UNKNOWN_ID));
      });
    });

    describe('list', () => {
      it('returns exactly the instances whose tags include all the given ones', async () => {
        const otherShard = `${shard}-other`;
        const web = await create(request());
        const db = await create(request({ [TAG.group]: 'db' }));
        const elsewhere = await create(request({ [TAG.shard]: otherShard }));
        const ids = (list: ProviderInstance[]): string[] => list.map((i) => i.providerId).sort();
        await eventually(async () => {
          expect(ids(await p.list({ [TAG.shard]: shard }))).toEqual([web.providerId, db.providerId].sort());
          expect(ids(await p.list({ [TAG.shard]: shard, [TAG.group]: 'web' }))).toEqual([web.providerId]);
          expect(ids(await p.list({ [TAG.shard]: shard, [TAG.group]: 'db' }))).toEqual([db.providerId]);
          expect(ids(await p.list({ [TAG.shard]: otherShard }))).toEqual([elsewhere.providerId]);
          expect(ids(await p.list({ [TAG.shard]: otherShard, [TAG.group]: 'db' }))).toEqual([]);
          expect(await p.list({ [TAG.shard]: `${shard}-none` })).toEqual([]);
        });
      });

      it('returns each instance with its provider id, a status and all its tags', async () => {
        const req = request();
        const { providerId } = await create(req);
        const listed = await listedWith(providerId, req.idempotencyKey, req.tags);
        expect(listed.providerId).toBe(providerId);
        expect(['pending', 'running']).toContain(listed.status);
        expect(listed.tags).toMatchObject(req.tags);
      });

      it('finds an instance by its instance-id tag alone (how an unconfirmed create is found to be deleted)', async () => {
        const req = request();
        const { providerId } = await create(req);
        await eventually(async () => expect((await p.list({ [TAG.instanceId]: req.idempotencyKey })).map((i) => i.providerId)).toEqual([providerId]));
      });
    });

    describe('delete', () => {
      it('leaves the instance not found or terminal, and gone from list', async () => {
        const req = request();
        const { providerId } = await create(req);
        await listedWith(providerId, req.idempotencyKey, req.tags);
        await p.delete(providerId);
        await eventually(async () => {
          const status = await p.status(providerId).catch((err: unknown) => {
            if (err instanceof InstanceNotFoundError) return 'notFound' as const;
            throw err;
          });
          expect(status === 'notFound' || isTerminalStatus(status), `status after delete: ${status}`).toBe(true);
          expect(await listById(req.idempotencyKey)).toEqual([]);
        });
        // And it stays gone.
        await t.settle();
        expect(await listById(req.idempotencyKey)).toEqual([]);
        const status = await p.status(providerId).catch((err: unknown) => (err instanceof InstanceNotFoundError ? 'notFound' : err));
        expect(['pending', 'running']).not.toContain(status);
      });

      it('deletes only the instance named', async () => {
        const a = await create(request());
        const b = await create(request());
        await p.delete(a.providerId);
        await eventually(async () => expect((await p.list({ [TAG.shard]: shard })).map((i) => i.providerId)).toEqual([b.providerId]));
        expect(['pending', 'running']).toContain(await p.status(b.providerId));
      });

      it('resolves or throws InstanceNotFoundError when the instance is already deleted', async () => {
        const { providerId } = await create(request());
        await p.delete(providerId);
        const err = await p.delete(providerId).then(
          () => null,
          (e: unknown) => e,
        );
        if (err !== null) expect(err, errorMessage(err)).toBeInstanceOf(InstanceNotFoundError);
      });

      it('throws InstanceNotFoundError, not retryable, for an id that never existed', async () => {
        await expectNotFound(p.delete(t.unknownProviderId ?? DEFAULT_UNKNOWN_ID));
      });
    });

    describe('tags', () => {
      it("round-trips every one of Drover's tags with the longest values it writes", async (ctx) => {
        const setTags = setTagsOrSkip(ctx);
        const instanceId = newInstanceId();
        const at = (ms: number): string => new Date(Date.UTC(2030, 11, 31, 23, 59, 59, 999) + ms).toISOString();
        const createTags = droverTags(instanceId, {
          [TAG.tenant]: longName('tenant'),
          [TAG.group]: longName('group'),
          [TAG.templateName]: longName('template'),
          [TAG.createdAt]: at(0),
        });
        const drainTags = { [TAG.drainStartedAt]: at(1), [TAG.drainDeadline]: at(300_000), [TAG.drainReason]: 'terminationNotice' };
        const everyKey = { ...createTags, ...drainTags, [TAG.drainCancelledAt]: at(2), [TAG.launchHook]: 'abandoned' };
        expect(Object.keys(everyKey).sort()).toEqual(Object.values(TAG).sort());
        const max = t.limits?.maxTagValueLength;
        if (max !== undefined) for (const value of Object.values(everyKey)) expect(value.length).toBeLessThanOrEqual(max);

        const req = request({}, instanceId);
        req.tags = createTags;
        const { providerId, tags } = await create(req);
        expect(tags).toMatchObject(createTags);
        await setTags(providerId, { ...drainTags, [TAG.drainCancelledAt]: at(2), [TAG.launchHook]: 'abandoned' });
        await listedWith(providerId, instanceId, everyKey);
      });

      it('setTags overwrites the keys given and keeps the others', async (ctx) => {
        const setTags = setTagsOrSkip(ctx);
        const req = request({ 'conformance:a': '1', 'conformance:b': '2' });
        const { providerId } = await create(req);
        await setTags(providerId, { 'conformance:b': '20', 'conformance:c': '30' });
        await listedWith(providerId, req.idempotencyKey, { ...req.tags, 'conformance:a': '1', 'conformance:b': '20', 'conformance:c': '30' });
      });

      it("keeps a drain's bookkeeping: started, extended, then cancelled with empty values that stay present", async (ctx) => {
        const setTags = setTagsOrSkip(ctx);
        const req = request();
        const { providerId } = await create(req);
        const started = { [TAG.drainStartedAt]: '2030-01-01T12:00:00.000Z', [TAG.drainDeadline]: '2030-01-01T12:05:00.000Z', [TAG.drainReason]: 'expiry' };
        await setTags(providerId, started);
        await listedWith(providerId, req.idempotencyKey, { ...req.tags, ...started });

        // An operator extends the deadline: only that tag is written (operator-actions.ts).
        await setTags(providerId, { [TAG.drainDeadline]: '2030-01-01T12:30:00.000Z' });
        await listedWith(providerId, req.idempotencyKey, { ...req.tags, ...started, [TAG.drainDeadline]: '2030-01-01T12:30:00.000Z' });

        // An operator cancels it: the drain tags are emptied, not removed (sync reads "" as cleared).
        const cancelled = { [TAG.drainStartedAt]: '', [TAG.drainDeadline]: '', [TAG.drainReason]: '', [TAG.drainCancelledAt]: '2030-01-01T12:10:00.000Z' };
        await setTags(providerId, cancelled);
        const listed = await listedWith(providerId, req.idempotencyKey, { ...req.tags, ...cancelled });
        for (const key of [TAG.drainStartedAt, TAG.drainDeadline, TAG.drainReason]) {
          expect(Object.hasOwn(listed.tags, key), `${key} is present`).toBe(true);
          expect(listed.tags[key]).toBe('');
        }
      });

      it('lands both of two tag writes in flight at once', async (ctx) => {
        const setTags = setTagsOrSkip(ctx);
        const req = request();
        const { providerId } = await create(req);
        await Promise.all([setTags(providerId, { [TAG.drainStartedAt]: '2030-01-01T12:00:00.000Z', [TAG.drainReason]: 'drift' }), setTags(providerId, { 'conformance:other': 'x' })]);
        await listedWith(providerId, req.idempotencyKey, { ...req.tags, [TAG.drainStartedAt]: '2030-01-01T12:00:00.000Z', [TAG.drainReason]: 'drift', 'conformance:other': 'x' });
      });

      it('stores a tag value as long as the provider allows', async (ctx) => {
        const setTags = setTagsOrSkip(ctx);
        const max = t.limits?.maxTagValueLength ?? 1024;
        const value = 'v'.repeat(max);
        const req = request();
        const { providerId } = await create(req);
        await setTags(providerId, { 'conformance:long': value });
        const listed = await listedWith(providerId, req.idempotencyKey, req.tags);
        expect(listed.tags['conformance:long']).toBe(value);
      });

      it('setTags throws InstanceNotFoundError for an id that never existed', async (ctx) => {
        const setTags = setTagsOrSkip(ctx);
        await expectNotFound(setTags(t.unknownProviderId ?? DEFAULT_UNKNOWN_ID, { 'conformance:a': '1' }));
      });
    });

    describe('errors', () => {
      const expected: Record<InjectedFault, string> = { throttled: 'a retryable ThrottledError', transient: 'retryable', permanent: 'not retryable' };
      const ops: ProviderOperation[] = ['create', 'status', 'list', 'delete', 'setTags'];
      const kinds: InjectedFault[] = ['throttled', 'transient', 'permanent'];
      const cases = ops.flatMap((op) => kinds.map((kind) => [op, kind, expected[kind]] as const));

      /** The target's injector for `kind`, or the test is skipped. */
      function injectorOrSkip(ctx: TestContext, kind: InjectedFault): (op: ProviderOperation) => void | Promise<void> {
        const inject = t.faults?.[kind];
        if (!inject) ctx.skip(`${name} cannot inject ${kind} failures`);
        return inject;
      }

      it.for(cases)('%s failing as %s is %s', async ([op, kind], ctx) => {
        const inject = injectorOrSkip(ctx, kind);
        if (op === 'setTags' && !p.setTags) ctx.skip(`${name} has no setTags`);
        const req = request();
        const existing = op === 'create' ? null : await create(req);
        await inject(op);
        const call = (): Promise<unknown> => {
          switch (op) {
            case 'create':
              t.willCreate?.(req.idempotencyKey);
              return p.create(req);
            case 'status':
              return p.status(existing!.providerId);
            case 'list':
              return p.list({ [TAG.shard]: shard });
            case 'delete':
              return p.delete(existing!.providerId);
            case 'setTags':
              return p.setTags!(existing!.providerId, { 'conformance:a': '1' });
          }
        };
        const err = await thrown(call());
        if (kind === 'throttled') expect(err, errorMessage(err)).toBeInstanceOf(ThrottledError);
        expect(isRetryable(err), errorMessage(err)).toBe(kind !== 'permanent');
      });

      it('makes one instance when a create that failed transiently is retried with the same key', async (ctx) => {
        const inject = injectorOrSkip(ctx, 'transient');
        const req = request();
        await inject('create');
        t.willCreate?.(req.idempotencyKey);
        const err = await thrown(p.create(req));
        expect(isRetryable(err), errorMessage(err)).toBe(true);
        const { providerId } = await create(req);
        await listedWith(providerId, req.idempotencyKey, req.tags);
        await t.settle();
        expect(await listById(req.idempotencyKey)).toHaveLength(1);
      });

      it('makes no instance when a create is refused permanently', async (ctx) => {
        const inject = injectorOrSkip(ctx, 'permanent');
        const req = request();
        await inject('create');
        t.willCreate?.(req.idempotencyKey);
        const err = await thrown(p.create(req));
        expect(isRetryable(err), errorMessage(err)).toBe(false);
        await t.settle();
        expect(await listById(req.idempotencyKey)).toEqual([]);
      });
    });
  });
}
