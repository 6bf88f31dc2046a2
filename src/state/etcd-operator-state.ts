/**
 * EtcdOperatorState: operator decisions shared by the replicas of a shard, in etcd under
 * `/drover/<shard>/state/`.
 *
 * - Reads are synchronous, from a cache loaded at `start()` and kept current by a watch of the
 *   prefix (so a follower serves the sizes its leader set).
 * - Writes are transactions guarded by the leader key: `if createRevision(leaderKey) == epoch
 *   then put/delete`. Only the replica whose term is current can write; a deposed leader's write
 *   fails with NotLeaderError even if it has not noticed yet.
 * - Every value read is checked against its key's schema (operator-state.ts): one that is not
 *   JSON or does not fit (written by hand, by a broken or hostile client) is logged and treated
 *   as absent — a put of garbage over a valid value removes it from the cache rather than
 *   leaving the old one in force. Writes are checked the same way before they are sent.
 */
import type { Etcd3, IKeyValue, Watcher } from 'etcd3';
import type { Clock } from '../clock/index.js';
import { ConflictError, InvalidRequestError, NotLeaderError, errorMessage, UnavailableError } from '../errors/index.js';
import type { Fence } from '../leader/index.js';
import type { Logger } from '../logging/index.js';
import { CachedOperatorState, checkOperatorValue } from './operator-state.js';

export interface EtcdOperatorStateOptions {
  client: Etcd3;
  shardId: string;
  /** The current term's leader key and epoch; null when this replica may not write. */
  fence: () => Fence | null;
  clock: Clock;
  logger?: Logger;
  /** Key prefix. Default "/drover". */
  prefix?: string;
  /** Time a write may take, retries included (and the timeout of the initial load). Default 5 s. */
  callTimeoutMs?: number;
}

/** One attempt of a write; a write retries within `callTimeoutMs`. */
const ATTEMPT_MS = 1_000;

const noopLogger: Logger = { debug: () => undefined, info: () => undefined, warn: () => undefined, error: () => undefined };

export class EtcdOperatorState extends CachedOperatorState {
  /** The etcd prefix under which the entries live. */
  readonly keyPrefix: string;
  private readonly log: Logger;
  private watcher: Watcher | undefined;
  private loaded = false;
  private closed = false;

  constructor(private readonly options: EtcdOperatorStateOptions) {
    super();
    this.keyPrefix = `${options.prefix ?? '/drover'}/${options.shardId}/state/`;
    this.log = options.logger ?? noopLogger;
  }

  /** True once the entries were loaded from etcd. */
  get ready(): boolean {
    return this.loaded;
  }

  /**
   * Loads every entry and starts watching for changes. Retries until etcd answers (a replica
   * must not act on sizes it has not read); rejects only when closed meanwhile.
   */
  async start(): Promise<void> {
    let attempt = 0;
    for (;;) {
      if (this.closed) throw new ConflictError('loading operator state from etcd: the store was closed');
      try {
        await this.load();
        return;
      } catch (err) {
        attempt++;
        if (attempt === 1 || attempt % 10 === 0) this.log.warn({ err: errorMessage(err), attempt }, 'loading operator state from etcd failed; retrying');
        await this.options.clock.sleep(Math.min(2_000, 200 * attempt));
      }
    }
  }

  async close(): Promise<void> {
    this.closed = true;
    await this.watcher?.cancel().catch(() => undefined);
    this.watcher = undefined;
  }

  async set(key: string, value: unknown): Promise<void> {
    const action = `writing operator state ${key}`;
    const fence = this.options.fence();
    if (!fence) throw new NotLeaderError(action);
    const full = this.keyPrefix + key;
    const remove = value === null || value === undefined;
    let checked: unknown;
    if (!remove) {
      const result = checkOperatorValue(key, value);
      if (!result.ok) throw new InvalidRequestError(`${action}: ${result.problem}`);
      checked = result.value;
    }
    const { client, clock } = this.options;
    // Short attempts within the budget: an attempt stuck on a member that just died (its
    // channel waits for a connection) must not use up the whole budget.
    const budgetEnds = clock.nowMs() + (this.options.callTimeoutMs ?? 5_000);
    let succeeded: boolean;
    for (let attempt = 1; ; attempt++) {
      const current = this.options.fence();
      if (!current || current.epoch !== fence.epoch) throw new NotLeaderError(action);
      try {
        const res = await client
          .if(fence.key, 'Create', '==', fence.epoch)
          .then(remove ? client.delete().key(full) : client.put(full).value(JSON.stringify(checked)))
          .options({ deadline: new Date(Math.min(budgetEnds, clock.nowMs() + ATTEMPT_MS)) })
          .commit();
        succeeded = res.succeeded;
        break;
      } catch (err) {
        if (clock.nowMs() + 100 >= budgetEnds) throw new UnavailableError(`${action}: ${errorMessage(err)} (after ${attempt} attempts)`);
        this.log.debug({ key, attempt, err: errorMessage(err) }, 'operator state write failed; retrying');
        await clock.sleep(50);
      }
    }
    // The leader key no longer has our create revision: another replica's term has begun.
    if (!succeeded) throw new NotLeaderError(`${action} (epoch ${fence.epoch} is over)`);
    this.apply(key, remove ? undefined : checked);
  }


  private async load(): Promise<void> {
    const { client } = this.options;
    const deadline = new Date(this.options.clock.nowMs() + (this.options.callTimeoutMs ?? 5_000));
    const res = await client.getAll().prefix(this.keyPrefix).options({ deadline }).exec();
    this.cache.clear();
    for (const kv of res.kvs) {
      const value = this.parse(kv);
      if (value !== undefined) this.cache.set(this.shortKey(kv), value);
    }
    const revision = Number(res.header.revision);
    const watcher = await client.watch().prefix(this.keyPrefix).startRevision(String(revision + 1)).create();
    if (this.closed) {
      await watcher.cancel();
      return;
    }
    watcher.on('put', (kv) => this.apply(this.shortKey(kv), this.parse(kv)));
    watcher.on('delete', (kv) => this.apply(this.shortKey(kv), undefined));
    watcher.on('error', (err) => this.log.warn({ err: errorMessage(err) }, 'operator state watch error'));
    this.watcher = watcher;
    this.loaded = true;
    this.log.info({ entries: this.cache.size, revision }, 'operator state loaded from etcd');
  }

  private apply(key: string, value: unknown): void {
    const before = this.cache.get(key);
    if (value === undefined) {
      if (!this.cache.has(key)) return;
      this.cache.delete(key);
    } else {
      if (before !== undefined && JSON.stringify(before) === JSON.stringify(value)) return; // our own write, seen again
      this.cache.set(key, value);
    }
    for (const listener of this.listeners) {
      try {
        listener(key);
      } catch (err) {
        this.log.error({ key, err: errorMessage(err) }, 'operator state listener threw');
      }
    }
  }

  private shortKey(kv: IKeyValue): string {
    return kv.key.toString('utf8').slice(this.keyPrefix.length);
  }

  /** The checked value of an entry, or undefined (logged) when it is not valid. */
  private parse(kv: IKeyValue): unknown {
    const key = kv.key.toString('utf8');
    let raw: unknown;
    try {
      raw = JSON.parse(kv.value.toString('utf8'));
    } catch (err) {
      this.log.warn({ key, problem: `not JSON: ${errorMessage(err)}` }, 'invalid operator state entry ignored');
      return undefined;
    }
    const checked = checkOperatorValue(key.slice(this.keyPrefix.length), raw);
    if (checked.ok) return checked.value;
    this.log.warn({ key, problem: checked.problem }, 'invalid operator state entry ignored');
    return undefined;
  }
}
