/**
 * EtcdElector: one leader per shard among the replicas that share an etcd cluster.
 *
 * Built on etcd's primitives rather than the client library's election helper (which has had
 * multi-leader reports after etcd restarts):
 * - a lease with the configured TTL, kept alive by this class (one keepalive every TTL/3);
 * - campaign = one transaction: `if createRevision(leaderKey) == 0 then put(leaderKey, {id,
 *   address}, lease) else get(leaderKey)`. The winner's epoch is the key's create revision,
 *   which no later leader can share;
 * - followers watch the key and campaign again at once when it is deleted (lease expired or
 *   revoked), and also on every renewal tick (the watch only makes it faster);
 * - leadership is decided locally, from the clock: `isLeader()` is true only before
 *   `last successful renewal sent + TTL - margin`. etcd cannot expire the lease before the last
 *   renewal it applied + TTL (a new etcd leader or a restarted cluster extends leases), and
 *   renewals are applied after they are sent; so this replica stops acting before any other
 *   replica can win, even when this process was paused (SIGSTOP) and has not yet noticed.
 * - a renewal that lapsed but then succeeds on the same lease (an etcd member restart, a slow
 *   election) resumes leadership with the same epoch, after checking the key is still ours;
 * - `stop()` revokes the lease, which deletes the key: another replica takes over at once.
 *
 * Listeners hear every change (a win, a loss, a lapse and its recovery); the composition root
 * enqueues InitialReconcile on every win.
 */
import { randomBytes } from 'node:crypto';
import { ConsecutiveBreaker, ExponentialBackoff, circuitBreaker, handleWhen, retry } from 'cockatiel';
import { Etcd3, isRecoverableError, type IKeyValue, type IOptions, type Watcher } from 'etcd3';
import { z } from 'zod';
import type { Clock, TimerHandle } from '../clock/index.js';
import { InternalError, SettingError, UnavailableError, errorMessage } from '../errors/index.js';
import { parseCertificates, readSettingFile } from '../util/pem.js';
import type { Logger } from '../logging/index.js';
import type { LeaderElector } from './elector.js';

export interface EtcdElectorOptions {
  /** A client for the etcd cluster (see `connectEtcd`); not closed by the elector. */
  client: Etcd3;
  /** The shard whose leadership this is (`shard.id`). */
  shardId: string;
  /** Lease TTL in ms; rounded up to whole seconds (etcd's unit). */
  ttlMs: number;
  /** This replica's advertised URL (for redirects and agents), when known. */
  address: () => string | null;
  clock: Clock;
  logger?: Logger;
  /** Identity written into the leader key. Default: random. */
  id?: string;
  /**
   * Safety margin: leadership ends this long before the lease could expire at etcd.
   * Default max(200 ms, TTL / 5).
   */
  marginMs?: number;
  /** Key prefix. Default "/drover". */
  prefix?: string;
}

/**
 * What the leader key holds. Checked when read: the address is handed to agents and used for
 * redirects, so a record that does not fit (written by hand, by a broken or hostile client) is
 * logged and treated as no known leader.
 */
export const leaderRecordSchema = z.object({
  id: z.string().min(1).max(256),
  address: z
    .url({ protocol: /^https?$/, error: 'must be an http(s) URL' })
    .max(2_048)
    .nullable(),
  since: z.iso.datetime({ offset: true, error: 'must be an ISO 8601 time' }),
});
export type LeaderRecord = z.output<typeof leaderRecordSchema>;

/** The fencing facts of the current term, for guarded writes. */
export interface Fence {
  /** The leader key. */
  key: string;
  /** Its create revision: the epoch. */
  epoch: number;
}

/** Renewal attempts per step: each picks a member at random, so a down member is soon missed. */
const KEEPALIVE_ATTEMPTS = 8;
/** A failure this quick is a refused connection or an unavailable member, not a slow cluster. */
const FAST_FAILURE_MS = 150;

const noopLogger: Logger = { debug: () => undefined, info: () => undefined, warn: () => undefined, error: () => undefined };

/** The leader key of a shard. */
export function leaderKeyOf(shardId: string, prefix = '/drover'): string {
  return `${prefix}/${shardId}/leader`;
}

/** How to reach a secured etcd: `leader.tls` and `leader.auth` of the config (file paths). */
export interface EtcdSecurity {
  /** The CA that signed etcd's certificates, and this client's certificate and key (etcd's --client-cert-auth). */
  tls?: { ca: string; cert?: string | undefined; key?: string | undefined } | undefined;
  /** An etcd user, its password read from a file (trimmed). */
  auth?: { username: string; passwordFile: string } | undefined;
}

/** etcd3's `credentials` and `auth` options for `security`; throws a SettingError naming the setting and file at fault. */
export function etcdSecurityOptions(endpoints: readonly string[], security: EtcdSecurity): Pick<IOptions, 'credentials' | 'auth'> {
  const options: Pick<IOptions, 'credentials' | 'auth'> = {};
  const { tls, auth } = security;
  if (tls) {
    // etcd3 would speak TLS to an http:// endpoint given credentials: say what is meant instead.
    const plain = endpoints.find((e) => !e.startsWith('https://'));
    if (plain !== undefined) throw new SettingError(`connecting to etcd: leader.tls is set but endpoint ${plain} is not https://`);
    if ((tls.cert === undefined) !== (tls.key === undefined)) throw new SettingError('connecting to etcd: leader.tls.cert and leader.tls.key go together');
    const rootCertificate = readSettingFile('leader.tls.ca', tls.ca);
    parseCertificates('leader.tls.ca', tls.ca, rootCertificate);
    options.credentials = { rootCertificate };
    if (tls.cert !== undefined && tls.key !== undefined) {
      const certChain = readSettingFile('leader.tls.cert', tls.cert);
      const privateKey = readSettingFile('leader.tls.key', tls.key);
      parseCertificates('leader.tls.cert', tls.cert, certChain);
      options.credentials = { rootCertificate, certChain, privateKey };
    }
  }
  if (auth) {
    const password = readSettingFile('leader.auth.passwordFile', auth.passwordFile).toString('utf8').trim();
    if (password.length === 0) throw new SettingError(`reading leader.auth.passwordFile ${auth.passwordFile}: the file is empty`);
    options.auth = { username: auth.username, password };
  }
  return options;
}

/**
 * An etcd client tuned for leader election: calls fail over to the next member quickly, a
 * member that fails is skipped for half a second, and watches reconnect within a second.
 * `security` adds TLS (verified against `leader.tls.ca`, with a client certificate when given)
 * and etcd's user authentication; with https:// endpoints and no `leader.tls`, etcd is verified
 * against the system's CAs.
 */
export function connectEtcd(endpoints: readonly string[], security: EtcdSecurity = {}): Etcd3 {
  const hosts = endpoints.map((e) => e.trim()).filter((e) => e.length > 0);
  if (hosts.length === 0) throw new SettingError('connecting to etcd: leader.endpoints lists no endpoint');
  return new Etcd3({
    hosts,
    ...etcdSecurityOptions(hosts, security),
    dialTimeout: 1_000,
    faultHandling: {
      host: () => circuitBreaker(handleWhen(isRecoverableError), { halfOpenAfter: 500, breaker: new ConsecutiveBreaker(2) }),
      global: retry(handleWhen(isRecoverableError), { maxAttempts: Math.max(2, hosts.length) }),
      // etcd3 types this as a backoff instance; its first `next()` gives the first delay.
      watchBackoff: new ExponentialBackoff({ initialDelay: 100, maxDelay: 1_000 }).next(),
    },
  });
}

export class EtcdElector implements LeaderElector {
  readonly leaderKey: string;
  readonly id: string;
  private readonly client: Etcd3;
  private readonly clock: Clock;
  private readonly log: Logger;
  private readonly ttlSeconds: number;
  private readonly ttlMs: number;
  private readonly marginMs: number;
  private readonly listeners = new Set<(leader: boolean) => void>();

  private running = false;
  private loop: Promise<void> | undefined;
  private wake: (() => void) | undefined;
  private watcher: Watcher | undefined;

  private leaseId: string | null = null;
  /** Local deadline of the lease: last renewal sent + TTL - margin. */
  private leaseDeadlineMs = 0;
  /** True while we hold the key (as far as etcd last told us). */
  private holding = false;
  private epochValue: number | null = null;
  /** What listeners were last told. */
  private announced = false;
  private lapseTimer: TimerHandle | undefined;
  private current: LeaderRecord | null = null;
  private failures = 0;

  constructor(private readonly options: EtcdElectorOptions) {
    // leader.ttl is a positive duration by the config's schema: these catch a caller's bug.
    if (!(options.ttlMs > 0)) throw new InternalError(`creating the etcd elector: ttlMs must be > 0 (got ${options.ttlMs})`);
    this.client = options.client;
    this.clock = options.clock;
    this.log = options.logger ?? noopLogger;
    this.ttlSeconds = Math.max(1, Math.ceil(options.ttlMs / 1_000));
    this.ttlMs = this.ttlSeconds * 1_000;
    this.marginMs = options.marginMs ?? Math.max(200, Math.round(this.ttlMs / 5));
    if (this.marginMs >= this.ttlMs) throw new InternalError(`creating the etcd elector: marginMs ${this.marginMs} must be below the TTL ${this.ttlMs}`);
    this.id = options.id ?? `${randomBytes(6).toString('hex')}`;
    this.leaderKey = leaderKeyOf(options.shardId, options.prefix);
  }

  // ---- LeaderElector ---------------------------------------------------------------------------

  async start(): Promise<void> {
    if (this.running) return;
    this.running = true;
    this.startWatch();
    this.loop = this.run();
  }

  async stop(): Promise<void> {
    if (!this.running) return;
    this.running = false;
    this.wake?.();
    const wasHolding = this.holding;
    this.holding = false;
    this.announce();
    await this.loop;
    this.lapseTimer?.cancel();
    const lease = this.leaseId;
    this.leaseId = null;
    this.epochValue = null;
    if (lease !== null) {
      // Revoking deletes the leader key: another replica wins at once instead of after the TTL.
      try {
        await this.client.leaseClient.leaseRevoke({ ID: lease }, { deadline: this.deadline(1_000) });
        if (wasHolding) this.log.info({ shard: this.options.shardId }, 'leadership handed over');
      } catch (err) {
        this.log.warn({ err: errorMessage(err) }, 'revoking the leader lease failed; it expires by itself');
      }
    }
    await this.watcher?.cancel().catch(() => undefined);
    this.watcher = undefined;
  }

  isLeader(): boolean {
    return this.running && this.holding && this.clock.nowMs() < this.leaseDeadlineMs;
  }

  epoch(): number | null {
    return this.isLeader() ? this.epochValue : null;
  }

  leaderAddress(): string | null {
    if (this.isLeader()) return this.options.address();
    if (this.current && this.current.id === this.id) return null; // our own, lapsed: no one to send to
    return this.current?.address ?? null;
  }

  onChange(listener: (leader: boolean) => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  /** The leader key and epoch while this replica leads; null otherwise. For guarded writes. */
  fence(): Fence | null {
    const epoch = this.epoch();
    return epoch === null ? null : { key: this.leaderKey, epoch };
  }

  /** The leader record last seen (this replica's or another's), for status pages. */
  currentLeader(): LeaderRecord | null {
    return this.current;
  }

  // ---- the loop --------------------------------------------------------------------------------

  private async run(): Promise<void> {
    while (this.running) {
      try {
        await this.step();
        if (this.failures > 0) this.log.info({ failures: this.failures }, 'etcd reachable again');
        this.failures = 0;
      } catch (err) {
        this.failures++;
        // Log the first failure and then every tenth, not every tick of an outage.
        if (this.failures === 1 || this.failures % 10 === 0) this.log.warn({ err: errorMessage(err), failures: this.failures }, 'leader election step failed');
      }
      this.announce();
      if (!this.running) break;
      await this.pause(this.tickMs());
    }
  }

  /** Time between renewals: TTL / 3, sooner after a failure while the deadline allows. */
  private tickMs(): number {
    const tick = Math.round(this.ttlMs / 3);
    return this.failures > 0 ? Math.min(tick, 250) : tick;
  }

  private async step(): Promise<void> {
    if (this.leaseId === null) await this.grant();
    else await this.renew();
    if (this.leaseId !== null && !this.holding) await this.campaign();
  }


  private async grant(): Promise<void> {
    const sent = this.clock.nowMs();
    const res = await this.client.leaseClient.leaseGrant({ TTL: this.ttlSeconds }, { deadline: this.deadline(this.callTimeoutMs()) });
    if (!this.running) {
      await this.client.leaseClient.leaseRevoke({ ID: res.ID }).catch(() => undefined);
      return;
    }
    this.leaseId = res.ID;
    this.leaseDeadlineMs = sent + this.ttlMs - this.marginMs;
    this.log.debug({ lease: res.ID, ttlSeconds: this.ttlSeconds }, 'leader lease granted');
  }

  /** Sends one keepalive. A lease etcd no longer has ends leadership and is replaced. */
  private async renew(): Promise<void> {
    const lease = this.leaseId;
    if (lease === null) return;
    const lapsed = this.holding && this.clock.nowMs() >= this.leaseDeadlineMs;
    const sent = this.clock.nowMs();
    const ttl = await this.keepAliveAnyMember(lease);
    if (this.leaseId !== lease || !this.running) return;
    if (ttl <= 0) {
      this.log.warn({ lease, wasLeader: this.holding }, 'leader lease expired at etcd');
      this.leaseId = null;
      this.holding = false;
      this.epochValue = null;
      this.announce();
      await this.grant();
      return;
    }
    if (lapsed) {
      // The lease outlived our local deadline (etcd was slow or unreachable for a while): the
      // key is still ours only if etcd kept it, which a read confirms.
      const kv = await this.readKey();
      if (!kv || kv.lease !== lease || Number(kv.create_revision) !== this.epochValue) {
        this.log.warn({ lease, epoch: this.epochValue }, 'leader key no longer ours after a lapse');
        this.holding = false;
        this.epochValue = null;
        if (kv) this.current = this.parseRecord(kv);
      } else {
        this.log.info({ epoch: this.epochValue }, 'leader lease renewed after a lapse; leading again');
      }
    }
    this.leaseDeadlineMs = Math.max(this.leaseDeadlineMs, sent + this.ttlMs - this.marginMs);
  }

  private async campaign(): Promise<void> {
    const lease = this.leaseId;
    if (lease === null) return;
    const record: LeaderRecord = { id: this.id, address: this.options.address(), since: this.clock.now().toISOString() };
    const res = await this.client
      .if(this.leaderKey, 'Create', '==', 0)
      .then(this.client.put(this.leaderKey).value(JSON.stringify(record)).lease(lease))
      .else(this.client.get(this.leaderKey))
      .options({ deadline: this.deadline(this.callTimeoutMs()) })
      .commit();
    if (!this.running || this.leaseId !== lease) return;
    if (res.succeeded) {
      this.win(Number(res.header.revision), record);
      return;
    }
    const kv = res.responses[0]?.response_range?.kvs[0];
    if (!kv) return; // deleted in between: the next tick (or the watch) campaigns again
    if (kv.lease === lease) {
      // Our own put, applied although its answer was lost (the client retried the transaction).
      this.win(Number(kv.create_revision), this.parseRecord(kv) ?? record);
      return;
    }
    const before = this.current?.id;
    this.current = this.parseRecord(kv);
    if (this.current && this.current.id !== before) this.log.info({ leader: this.current.id, address: this.current.address }, 'following leader');
  }

  private win(epoch: number, record: LeaderRecord): void {
    this.holding = true;
    this.epochValue = epoch;
    this.current = record;
    this.log.info({ shard: this.options.shardId, epoch, id: this.id }, 'leadership won');
  }

  /** Tells listeners when `isLeader()` changed, and arms a timer for the local deadline. */
  private announce(): void {
    const now = this.isLeader();
    if (now !== this.announced) {
      this.announced = now;
      if (!now && this.running && this.holding) this.log.warn({ epoch: this.epochValue }, 'leader lease not renewed in time; not acting until it is');
      for (const listener of this.listeners) {
        try {
          listener(now);
        } catch (err) {
          this.log.error({ err: errorMessage(err) }, 'leadership listener threw');
        }
      }
    }
    this.lapseTimer?.cancel();
    this.lapseTimer = undefined;
    if (now) this.lapseTimer = this.clock.schedule(this.leaseDeadlineMs, () => this.announce());
  }

  // ---- etcd calls ------------------------------------------------------------------------------

  /**
   * One keepalive, tried again at once on another member when a member refuses it quickly.
   * etcd3 picks a random member for each stream and, unlike unary calls, does not skip a member
   * whose stream failed: with one member of three down, renewals failed one time in three, and a
   * few in a row let a lease expire (seen in the HA e2e test). A slow answer is not retried: the
   * call's deadline is the renewal's whole budget.
   */
  private async keepAliveAnyMember(lease: string): Promise<number> {
    const budgetEnds = this.clock.nowMs() + this.callTimeoutMs();
    for (let attempt = 1; ; attempt++) {
      const started = this.clock.nowMs();
      try {
        return await this.keepAlive(lease, budgetEnds);
      } catch (err) {
        const fast = this.clock.nowMs() - started < FAST_FAILURE_MS;
        if (!fast || attempt >= KEEPALIVE_ATTEMPTS || this.clock.nowMs() + FAST_FAILURE_MS >= budgetEnds || !this.running) throw err;
        this.log.debug({ lease, attempt, err: errorMessage(err) }, 'leader lease renewal refused by a member; trying another');
      }
    }
  }

  /** One keepalive on its own stream; resolves with the TTL etcd reports (0: lease gone). */
  private async keepAlive(lease: string, deadlineMs: number): Promise<number> {
    const stream = await this.client.leaseClient.leaseKeepAlive({ deadline: new Date(deadlineMs) });
    return new Promise<number>((resolve, reject) => {
      let settled = false;
      const finish = (fn: () => void): void => {
        if (settled) return;
        settled = true;
        fn();
        try {
          stream.end();
        } catch {
          // already closed
        }
      };
      stream.on('data', (res: { TTL: string }) => finish(() => resolve(Number(res.TTL))));
      // etcd's stream may emit a non-Error: made an Error for its message and stack; it stays a
      // plain Error, as the errors etcd3 raises, which the renewal logic classifies itself.
      stream.on('error', (err: unknown) => finish(() => reject(err instanceof Error ? err : new Error(errorMessage(err)))));
      stream.on('end', () => finish(() => reject(new UnavailableError('renewing the leader lease: the keepalive stream ended without an answer'))));
      stream.write({ ID: lease });
    });
  }

  private async readKey(): Promise<IKeyValue | null> {
    const res = await this.client.kv.range({ key: Buffer.from(this.leaderKey) }, { deadline: this.deadline(this.callTimeoutMs()) });
    return res.kvs[0] ?? null;
  }

  private startWatch(): void {
    this.client
      .watch()
      .key(this.leaderKey)
      .create()
      .then((watcher) => {
        if (!this.running) {
          void watcher.cancel();
          return;
        }
        this.watcher = watcher;
        watcher.on('put', (kv) => {
          this.current = this.parseRecord(kv);
        });
        watcher.on('delete', (kv) => {
          if (this.holding && this.epochValue !== null && Number(kv.mod_revision) > this.epochValue) {
            // Our key is gone (deleted by hand, or the lease expired while we were away): stop now.
            this.log.warn({ epoch: this.epochValue }, 'leader key deleted while leading');
            this.holding = false;
            this.epochValue = null;
            this.announce();
          }
          if (!this.holding) this.current = null;
          this.wake?.(); // campaign now rather than at the next tick
        });
        watcher.on('error', (err) => this.log.debug({ err: errorMessage(err) }, 'leader key watch error'));
      })
      .catch((err: unknown) => this.log.warn({ err: errorMessage(err) }, 'watching the leader key failed; campaigning on every tick'));
  }

  /** The record of a leader key, or null (logged) when it is not one. */
  private parseRecord(kv: IKeyValue): LeaderRecord | null {
    let raw: unknown;
    try {
      raw = JSON.parse(kv.value.toString('utf8'));
    } catch (err) {
      this.log.warn({ key: this.leaderKey, problem: `not JSON: ${errorMessage(err)}` }, 'invalid leader record ignored');
      return null;
    }
    const parsed = leaderRecordSchema.safeParse(raw);
    if (parsed.success) return parsed.data;
    const problem = parsed.error.issues.map((i) => (i.path.length ? `${i.path.join('.')}: ${i.message}` : i.message)).join('; ');
    this.log.warn({ key: this.leaderKey, problem }, 'invalid leader record ignored');
    return null;
  }

  /** Waits `ms` or until woken (watch event, stop). */
  private pause(ms: number): Promise<void> {
    return new Promise<void>((resolve) => {
      const timer = this.clock.schedule(this.clock.nowMs() + ms, () => done());
      const done = (): void => {
        timer.cancel();
        this.wake = undefined;
        resolve();
      };
      this.wake = done;
    });
  }

  /** gRPC deadlines: a call that hangs (a partitioned member) must not stall renewals. */
  private callTimeoutMs(): number {
    return Math.max(300, Math.round(this.ttlMs / 3));
  }

  private deadline(ms: number): Date {
    return new Date(this.clock.nowMs() + ms);
  }
}
