/**
 * The notification outbox (table `outbox`, migration 5): events waiting to be delivered to a
 * webhook, delivered ones (the delivery log) and dead letters. Rows are added by `LocalDb`'s
 * audit append through an `OutboxRouter`, in the audit entry's transaction, so an event exists
 * exactly when its fact does; the delivery worker (src/notifications/) reads and updates them.
 *
 * Contract on order: for one endpoint, rows with the same `orderKey` are handed out one at a
 * time, oldest id first; a row is only "due" while no older row of its key is still pending.
 */
import type Database from 'better-sqlite3';
import type { AuditEntry } from './types.js';

export type OutboxState = 'pending' | 'delivered' | 'dead';
export const OUTBOX_STATES: readonly OutboxState[] = ['pending', 'delivered', 'dead'];

/** A row to add: one event for one endpoint. */
export interface NewOutboxRow {
  eventId: string;
  endpoint: string;
  eventType: string;
  /** The tenant the event concerns (null: the whole server, e.g. a test event). */
  tenant: string | null;
  /** Events with the same key (for one endpoint) are delivered in the order they were added. */
  orderKey: string;
  /** The event as JSON (the `json` format's body). */
  payload: string;
  createdAt: number;
  /** When to stop retrying and keep it as a dead letter. */
  giveUpAt: number;
}

export interface OutboxRow extends NewOutboxRow {
  id: number;
  state: OutboxState;
  attempts: number;
  nextAttemptAt: number;
  lastAttemptAt: number | null;
  lastStatus: number | null;
  lastError: string | null;
  deliveredAt: number | null;
}

/** Turns an audit entry into the outbox rows it causes (none for most). Must not throw. */
export type OutboxRouter = (entry: AuditEntry) => readonly NewOutboxRow[];

export interface OutboxFilter {
  endpoint?: string;
  state?: OutboxState;
  eventId?: string;
  /** Only rows of these tenants (a scoped token's): rows of no tenant are left out too. */
  tenants?: readonly string[];
  /** Only rows with an id below this (paging back). */
  beforeId?: number;
  /** At most this many, newest first. */
  limit?: number;
}

export interface OutboxEndpointStats {
  endpoint: string;
  pending: number;
  dead: number;
  /** When the oldest pending row was added (null: none pending). */
  oldestPendingAt: number | null;
}

/** A draining instance as the drain-deadline watch needs it. */
export interface DrainingInstance {
  id: string;
  tenant: string;
  group: string;
  drainStartedAt: number | null;
  drainDeadline: number;
  drainReason: string | null;
  drainAckedAt: number | null;
}

interface Row {
  id: number;
  event_id: string;
  endpoint: string;
  event_type: string;
  tenant: string | null;
  order_key: string;
  payload: string;
  created_at: number;
  state: OutboxState;
  attempts: number;
  next_attempt_at: number;
  give_up_at: number;
  last_attempt_at: number | null;
  last_status: number | null;
  last_error: string | null;
  delivered_at: number | null;
}

function toRow(r: Row): OutboxRow {
  return {
    id: r.id,
    eventId: r.event_id,
    endpoint: r.endpoint,
    eventType: r.event_type,
    tenant: r.tenant,
    orderKey: r.order_key,
    payload: r.payload,
    createdAt: r.created_at,
    state: r.state,
    attempts: r.attempts,
    nextAttemptAt: r.next_attempt_at,
    giveUpAt: r.give_up_at,
    lastAttemptAt: r.last_attempt_at,
    lastStatus: r.last_status,
    lastError: r.last_error,
    deliveredAt: r.delivered_at,
  };
}

/** Longest error text kept per row. */
const MAX_ERROR_CHARS = 500;

export class OutboxTable {
  private readonly stmt;

  constructor(private readonly db: Database.Database) {
    this.stmt = {
      insert: db.prepare(
        `INSERT INTO outbox (event_id, endpoint, event_type, tenant, order_key, payload, created_at, next_attempt_at, give_up_at)
         VALUES (@eventId, @endpoint, @eventType, @tenant, @orderKey, @payload, @createdAt, @createdAt, @giveUpAt)
         ON CONFLICT (endpoint, event_id) DO NOTHING`,
      ),
      // The head of each (endpoint, key) that is due: no older pending row of its key.
      due: db.prepare<{ endpoint: string; now: number; limit: number }, Row>(
        `SELECT o.* FROM outbox o
         WHERE o.state = 'pending' AND o.endpoint = @endpoint AND o.next_attempt_at <= @now
           AND NOT EXISTS (SELECT 1 FROM outbox p WHERE p.state = 'pending' AND p.endpoint = o.endpoint AND p.order_key = o.order_key AND p.id < o.id)
         ORDER BY o.next_attempt_at, o.id LIMIT @limit`,
      ),
      nextDue: db.prepare<[string], { at: number | null }>("SELECT MIN(next_attempt_at) AS at FROM outbox WHERE state = 'pending' AND endpoint = ?"),
      get: db.prepare<[number], Row>('SELECT * FROM outbox WHERE id = ?'),
      delivered: db.prepare<[number, number, number, number]>(
        "UPDATE outbox SET state = 'delivered', attempts = attempts + 1, last_attempt_at = ?, delivered_at = ?, last_status = ?, last_error = NULL WHERE id = ? AND state = 'pending'",
      ),
      failed: db.prepare<[number, number | null, string, number, number]>(
        "UPDATE outbox SET attempts = attempts + 1, last_attempt_at = ?, last_status = ?, last_error = ?, next_attempt_at = ? WHERE id = ? AND state = 'pending'",
      ),
      dead: db.prepare<[number, number | null, string, number]>(
        "UPDATE outbox SET state = 'dead', attempts = attempts + 1, last_attempt_at = ?, last_status = ?, last_error = ? WHERE id = ? AND state = 'pending'",
      ),
      redeliver: db.prepare<[number, number, number]>(
        "UPDATE outbox SET state = 'pending', attempts = 0, next_attempt_at = ?, give_up_at = ?, last_error = NULL, last_status = NULL WHERE id = ? AND state = 'dead'",
      ),
      orphan: db.prepare<[string, string]>("UPDATE outbox SET state = 'dead', last_error = ? WHERE endpoint = ? AND state = 'pending'"),
      pendingEndpoints: db.prepare<[], { endpoint: string }>("SELECT DISTINCT endpoint FROM outbox WHERE state = 'pending'"),
      stats: db.prepare<[], { endpoint: string; state: OutboxState; n: number; oldest: number }>(
        "SELECT endpoint, state, COUNT(*) AS n, MIN(created_at) AS oldest FROM outbox WHERE state IN ('pending', 'dead') GROUP BY endpoint, state",
      ),
      purgeDelivered: db.prepare<[number]>("DELETE FROM outbox WHERE state = 'delivered' AND delivered_at < ?"),
      purgeDead: db.prepare<[number]>("DELETE FROM outbox WHERE state = 'dead' AND created_at < ?"),
      draining: db.prepare<[], { id: string; tenant: string; grp: string; drain_started_at: number | null; drain_deadline: number; drain_reason: string | null; drain_acked_at: number | null }>(
        "SELECT id, tenant, grp, drain_started_at, drain_deadline, drain_reason, drain_acked_at FROM instances WHERE status = 'draining' AND drain_deadline IS NOT NULL",
      ),
    };
  }

  /** Adds rows; a row whose (endpoint, eventId) is there already is skipped. Returns how many were added. */
  add(rows: readonly NewOutboxRow[]): number {
    let added = 0;
    for (const row of rows) added += this.stmt.insert.run(row).changes;
    return added;
  }

  /** Due heads of one endpoint (see the ordering contract), oldest due first. */
  due(endpoint: string, now: number, limit: number): OutboxRow[] {
    return this.stmt.due.all({ endpoint, now, limit }).map(toRow);
  }

  /** When the earliest pending row of an endpoint is due (null: none pending). */
  nextDueAt(endpoint: string): number | null {
    return this.stmt.nextDue.get(endpoint)?.at ?? null;
  }

  get(id: number): OutboxRow | null {
    const row = this.stmt.get.get(id);
    return row ? toRow(row) : null;
  }

  markDelivered(id: number, at: number, status: number): boolean {
    return this.stmt.delivered.run(at, at, status, id).changes === 1;
  }

  /** A failed attempt: retried at `retryAt`. */
  markFailed(id: number, at: number, status: number | null, error: string, retryAt: number): boolean {
    return this.stmt.failed.run(at, status, error.slice(0, MAX_ERROR_CHARS), retryAt, id).changes === 1;
  }

  /** A failed attempt after which it is not retried: a dead letter. */
  markDead(id: number, at: number, status: number | null, error: string): boolean {
    return this.stmt.dead.run(at, status, error.slice(0, MAX_ERROR_CHARS), id).changes === 1;
  }

  /** A dead letter back to pending, due at `now` and retried until `giveUpAt`. False if it is not a dead letter. */
  redeliver(id: number, now: number, giveUpAt: number): boolean {
    return this.stmt.redeliver.run(now, giveUpAt, id).changes === 1;
  }

  /** Endpoints that have pending rows. */
  pendingEndpoints(): string[] {
    return this.stmt.pendingEndpoints.all().map((r) => r.endpoint);
  }

  /** Every pending row of an endpoint becomes a dead letter with this reason (the endpoint left the config). */
  orphan(endpoint: string, reason: string): number {
    return this.stmt.orphan.run(reason, endpoint).changes;
  }

  stats(): OutboxEndpointStats[] {
    const byEndpoint = new Map<string, OutboxEndpointStats>();
    for (const r of this.stmt.stats.all()) {
      const s = byEndpoint.get(r.endpoint) ?? { endpoint: r.endpoint, pending: 0, dead: 0, oldestPendingAt: null };
      if (r.state === 'pending') s.pending = r.n;
      else if (r.state === 'dead') s.dead = r.n;
      if (r.state === 'pending') s.oldestPendingAt = r.oldest;
      byEndpoint.set(r.endpoint, s);
    }
    return [...byEndpoint.values()].sort((a, b) => a.endpoint.localeCompare(b.endpoint));
  }

  /** Rows, newest first. */
  list(filter: OutboxFilter = {}): OutboxRow[] {
    const where: string[] = [];
    const params: unknown[] = [];
    const when = (condition: string, ...values: unknown[]): void => {
      where.push(condition);
      params.push(...values);
    };
    if (filter.endpoint !== undefined) when('endpoint = ?', filter.endpoint);
    if (filter.state !== undefined) when('state = ?', filter.state);
    if (filter.eventId !== undefined) when('event_id = ?', filter.eventId);
    if (filter.beforeId !== undefined) when('id < ?', filter.beforeId);
    if (filter.tenants !== undefined) when(`tenant IN (${filter.tenants.map(() => '?').join(', ') || 'NULL'})`, ...filter.tenants);
    const sql = `SELECT * FROM outbox ${where.length ? `WHERE ${where.join(' AND ')}` : ''} ORDER BY id DESC LIMIT ?`;
    params.push(filter.limit ?? 100);
    return (this.db.prepare(sql).all(...params) as Row[]).map(toRow);
  }

  /** Removes delivered rows delivered before `deliveredBefore` and dead letters added before `deadBefore`. */
  purge(deliveredBefore: number, deadBefore: number): { delivered: number; dead: number } {
    return {
      delivered: this.stmt.purgeDelivered.run(deliveredBefore).changes,
      dead: this.stmt.purgeDead.run(deadBefore).changes,
    };
  }

  /** Instances draining now, with a deadline. */
  drainingInstances(): DrainingInstance[] {
    return this.stmt.draining.all().map((r) => ({
      id: r.id,
      tenant: r.tenant,
      group: r.grp,
      drainStartedAt: r.drain_started_at,
      drainDeadline: r.drain_deadline,
      drainReason: r.drain_reason,
      drainAckedAt: r.drain_acked_at,
    }));
  }
}
