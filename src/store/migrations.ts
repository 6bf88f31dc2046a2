/**
 * Versioned schema migrations. The database's `user_version` is the number of migrations
 * applied; each runs once, in order, inside a transaction. Never edit a released migration:
 * add a new one.
 */
export const MIGRATIONS: readonly string[] = [
  // 1: instances, audit, durable timers, per-group state.
  `
  CREATE TABLE instances (
    id TEXT PRIMARY KEY,
    tenant TEXT NOT NULL,
    grp TEXT NOT NULL,
    provider_id TEXT,
    status TEXT NOT NULL,
    template_name TEXT NOT NULL,
    template_hash TEXT NOT NULL,
    create_reason TEXT NOT NULL,
    replaces TEXT,
    created_at INTEGER NOT NULL,
    confirmed_at INTEGER,
    health_at INTEGER,
    unhealthy_at INTEGER,
    provider_status TEXT,
    provider_checked_at INTEGER,
    drain_started_at INTEGER,
    drain_deadline INTEGER,
    drain_acked_at INTEGER,
    drain_reason TEXT,
    notice_at INTEGER,
    notice_deadline INTEGER,
    attempts INTEGER NOT NULL DEFAULT 0,
    next_attempt_at INTEGER,
    last_error TEXT,
    deleted_at INTEGER,
    delete_reason TEXT
  );
  CREATE INDEX instances_live_by_group ON instances (tenant, grp) WHERE status <> 'deleted';
  CREATE INDEX instances_by_provider_id ON instances (provider_id);
  CREATE INDEX instances_departed_by_group ON instances (tenant, grp, deleted_at) WHERE status = 'deleted';

  CREATE TABLE audit (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    at INTEGER NOT NULL,
    tenant TEXT NOT NULL,
    grp TEXT NOT NULL,
    instance_id TEXT,
    action TEXT NOT NULL,
    reason TEXT NOT NULL,
    event TEXT,
    actor TEXT NOT NULL,
    detail TEXT,
    epoch INTEGER
  );
  CREATE INDEX audit_by_instance ON audit (instance_id, seq);
  CREATE INDEX audit_by_group ON audit (tenant, grp, seq);

  CREATE TABLE timers (
    key TEXT PRIMARY KEY,
    due_at INTEGER NOT NULL,
    event TEXT NOT NULL
  );

  CREATE TABLE group_state (
    tenant TEXT NOT NULL,
    grp TEXT NOT NULL,
    hold_key TEXT,
    hold_reason TEXT,
    hold_at INTEGER,
    PRIMARY KEY (tenant, grp)
  );
  `,
  // 2: operator decisions (sizes set through the API, protection, holds) as JSON values by key.
  `
  CREATE TABLE operator_state (
    key TEXT PRIMARY KEY,
    value TEXT NOT NULL,
    updated_at INTEGER NOT NULL
  );
  `,
  // 3: a group that left the config is removed only after a grace (groupRemovalGrace): when it was
  // first seen gone; since when its health brake holds; an instance's first health report (a
  // replacement proves healthy over a window). Deleted instances and the audit are purged by age
  // (store.retention).
  `
  ALTER TABLE group_state ADD COLUMN removal_since INTEGER;
  ALTER TABLE group_state ADD COLUMN brake_since INTEGER;
  ALTER TABLE instances ADD COLUMN first_health_at INTEGER;
  UPDATE instances SET first_health_at = health_at WHERE health_at IS NOT NULL;
  CREATE INDEX instances_deleted_at ON instances (deleted_at) WHERE status = 'deleted';
  `,
  // 4: one-time bootstrap tokens an instance exchanges for its agent credential (a cloud whose
  // user data others can read gets a token, not the credential). Only each token's SHA-256 is
  // kept. Every token issued for an instance is good until one of them is used; `refusals`
  // counts presentations refused after that (the first is audited).
  `
  CREATE TABLE agent_bootstrap_tokens (
    token_hash TEXT PRIMARY KEY,
    instance_id TEXT NOT NULL,
    issued_at INTEGER NOT NULL,
    expires_at INTEGER NOT NULL,
    used_at INTEGER,
    refusals INTEGER NOT NULL DEFAULT 0
  );
  CREATE INDEX agent_bootstrap_tokens_by_instance ON agent_bootstrap_tokens (instance_id);
  `,
  // 5: the notification outbox. A webhook event is written here in the same transaction as the
  // audit entry that records its fact, one row per endpoint that wants it, and delivered from
  // here (src/notifications/). Rows of one (endpoint, order_key) go out in id order.
  // `event_id` is the same for every endpoint and every retry: receivers dedupe by it. Draining
  // instances get their own index: the drain-deadline watch reads them often.
  `
  CREATE TABLE outbox (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    event_id TEXT NOT NULL,
    endpoint TEXT NOT NULL,
    event_type TEXT NOT NULL,
    tenant TEXT,
    order_key TEXT NOT NULL,
    payload TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    state TEXT NOT NULL DEFAULT 'pending',
    attempts INTEGER NOT NULL DEFAULT 0,
    next_attempt_at INTEGER NOT NULL,
    give_up_at INTEGER NOT NULL,
    last_attempt_at INTEGER,
    last_status INTEGER,
    last_error TEXT,
    delivered_at INTEGER,
    UNIQUE (endpoint, event_id)
  );
  CREATE INDEX outbox_pending_by_key ON outbox (endpoint, order_key, id) WHERE state = 'pending';
  CREATE INDEX outbox_pending_due ON outbox (endpoint, next_attempt_at, id) WHERE state = 'pending';
  CREATE INDEX outbox_by_state ON outbox (state, id);
  CREATE INDEX instances_draining ON instances (drain_deadline) WHERE status = 'draining';
  `,
  // 6: launch hooks (a group's hooks.launch): an instance's hook state (null: none; pending,
  // continued, abandoned) and when it was completed.
  `
  ALTER TABLE instances ADD COLUMN launch_hook TEXT;
  ALTER TABLE instances ADD COLUMN launch_hook_at INTEGER;
  `,
  // 7: a fleet of a million (B3-1M). The live-by-group index also holds the status, so the
  // dashboard's fleet totals and its page of groups are counted from the index alone (GROUP BY
  // tenant, grp, status) instead of visiting every row; and the deletes a start retries are
  // found without a scan of the table.
  `
  DROP INDEX instances_live_by_group;
  CREATE INDEX instances_live_by_group ON instances (tenant, grp, status) WHERE status <> 'deleted';
  CREATE INDEX instances_deleting ON instances (tenant, grp) WHERE status = 'deleting';
  `,
  // 8: the last health report of each live instance in a narrow table of its own. A report then
  // rewrites a ~50-byte row, ~80 to a page, instead of the instance's ~500-byte row: the group
  // commit dirties and checkpoints fewer, smaller pages (B5: ~2,000 reports a second at 10,000
  // agents). A row exists exactly while its instance is not deleted and has reported; then it
  // holds the instance's health time, and instances.health_at is the time as of the row's last
  // status change (see LocalDb.writeFields).
  `
  CREATE TABLE instance_health (
    instance_id TEXT PRIMARY KEY,
    at INTEGER NOT NULL
  ) WITHOUT ROWID;
  INSERT INTO instance_health (instance_id, at) SELECT id, health_at FROM instances WHERE status <> 'deleted' AND health_at IS NOT NULL;
  `,
];
