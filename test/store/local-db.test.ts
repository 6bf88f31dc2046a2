import Database from 'better-sqlite3';
import { mkdtempSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { IllegalTransitionError, STATUS_MOVES, moveAllowed } from '../../src/store/lifecycle.js';
import { openLocalDb, type LocalDb, type NewInstance } from '../../src/store/local-db.js';
import { instanceCursor } from '../../src/store/rows.js';
import { setRow } from '../helpers/store-fixtures.js';
import { MIGRATIONS } from '../../src/store/migrations.js';
import type { InstanceRecord, InstanceStatus, StoreChange } from '../../src/store/types.js';

const T0 = Date.UTC(2030, 0, 1);
const at = (offsetMs: number): Date => new Date(T0 + offsetMs);

function newInstance(id: string, overrides: Partial<NewInstance> = {}): NewInstance {
  return {
    id,
    tenant: 'default',
    group: 'web',
    templateName: 'web',
    templateHash: 'abc123',
    createReason: 'scaleUp',
    createdAt: at(0),
    ...overrides,
  };
}

/** A record with every field set to a non-default value. */
function fullRecord(id: string): InstanceRecord {
  return {
    id,
    tenant: 'acme',
    group: 'api',
    providerId: `p-${id}`,
    status: 'draining',
    templateName: 'api',
    templateHash: 'h-1',
    createReason: 'expiry',
    replaces: 'old-1',
    createdAt: at(1),
    confirmedAt: at(2),
    healthAt: at(3),
    firstHealthAt: at(2),
    unhealthyAt: at(4),
    providerStatus: 'running',
    providerCheckedAt: at(5),
    drainStartedAt: at(6),
    drainDeadline: at(7),
    drainAckedAt: at(8),
    drainReason: 'expiry',
    noticeAt: at(9),
    noticeDeadline: at(10),
    attempts: 3,
    nextAttemptAt: at(11),
    lastError: 'boom',
    deletedAt: at(12),
    deleteReason: 'drainDeadline',
    launchHook: 'continued',
    launchHookAt: at(13),
  };
}

describe('LocalDb', () => {
  let dir: string;
  const dbs: LocalDb[] = [];

  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), 'drover-db-'));
  });

  afterEach(() => {
    for (const db of dbs.splice(0)) db.close();
    rmSync(dir, { recursive: true, force: true });
  });

  function open(path = ':memory:'): LocalDb {
    const db = openLocalDb(path);
    dbs.push(db);
    return db;
  }

  describe('opening and migrations', () => {
    it('opens an in-memory database with the full schema', () => {
      const db = open();
      expect(db.isOpen).toBe(true);
      expect(db.path).toBe(':memory:');
      expect(db.schemaVersion).toBe(MIGRATIONS.length);
      db.insertInstance(newInstance('i-1'));
      expect(db.getInstance('i-1')?.id).toBe('i-1');
    });

    it('creates a file database, and its directory, migrated to the latest schema', () => {
      const path = join(dir, 'nested', 'deeper', 'drover.db');
      const db = open(path);
      expect(db.schemaVersion).toBe(MIGRATIONS.length);
      db.close();
      const raw = new Database(path, { readonly: true });
      try {
        expect(raw.pragma('user_version', { simple: true })).toBe(MIGRATIONS.length);
        const tables = raw
          .prepare<[], { name: string }>("SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name")
          .all()
          .map((r) => r.name);
        expect(tables).toEqual(expect.arrayContaining(['audit', 'group_state', 'instances', 'timers']));
      } finally {
        raw.close();
      }
    });

    it('uses WAL journal mode for a file database', () => {
      const path = join(dir, 'drover.db');
      open(path).close();
      const raw = new Database(path, { readonly: true });
      try {
        expect(raw.pragma('journal_mode', { simple: true })).toBe('wal');
      } finally {
        raw.close();
      }
    });

    it('keeps data across close and reopen, without running the migrations again', () => {
      const path = join(dir, 'drover.db');
      const first = open(path);
      first.insertInstance(newInstance('i-1', { providerId: 'p-1' }));
      first.appendAudit({ at: at(0), tenant: 'default', group: 'web', instanceId: 'i-1', action: 'create', reason: 'scaleUp' });
      first.setTimer('k', 100, 'Tick');
      first.close();
      expect(first.isOpen).toBe(false);

      // A migration that ran again would fail ("table instances already exists") or wipe the data.
      const second = open(path);
      expect(second.schemaVersion).toBe(MIGRATIONS.length);
      expect(second.getInstance('i-1')?.providerId).toBe('p-1');
      expect(second.listAudit()).toHaveLength(1);
      expect(second.listTimers()).toEqual([{ key: 'k', dueAt: 100, event: 'Tick' }]);
    });

    it('moves the last health report of live instances into their own table when it upgrades a schema-7 database', () => {
      const path = join(dir, 'drover.db');
      const raw = new Database(path);
      raw.pragma('journal_mode = WAL');
      raw.exec(MIGRATIONS.slice(0, 7).join('\n'));
      raw.pragma('user_version = 7');
      const insert = raw.prepare(
        "INSERT INTO instances (id, tenant, grp, status, template_name, template_hash, create_reason, created_at, health_at, first_health_at) VALUES (?, 'default', 'web', ?, 'web', 'h', 'scaleUp', 0, ?, ?)",
      );
      insert.run('live', 'running', T0 + 100, T0 + 10);
      insert.run('gone', 'deleted', T0 + 200, T0 + 20);
      insert.run('new', 'creating', null, null);
      raw.close();

      const db = open(path);
      expect(db.schemaVersion).toBe(MIGRATIONS.length);
      expect(db.listInstances({ includeDeleted: true }).map((i) => [i.id, i.healthAt?.getTime() ?? null, i.firstHealthAt?.getTime() ?? null])).toEqual([
        ['gone', T0 + 200, T0 + 20],
        ['live', T0 + 100, T0 + 10],
        ['new', null, null],
      ]);
      expect(db.recordHealth('live', at(150))).toBe(true);
      expect(db.recordHealth('gone', at(250))).toBe(false);
      expect(db.getInstance('live')?.healthAt?.getTime()).toBe(T0 + 150);
      expect(db.earliestHealthAt('default', 'web')?.getTime()).toBe(T0 + 150);
    });

    it('refuses a database whose schema is newer than this code', () => {
      const path = join(dir, 'drover.db');
      open(path).close();
      const raw = new Database(path);
      raw.pragma(`user_version = ${MIGRATIONS.length + 1}`);
      raw.close();
      expect(() => openLocalDb(path)).toThrow(/newer than this Drover/);
    });

    it('refuses on read a reason Drover does not write (the database was changed behind its back), naming the column', () => {
      const path = join(dir, 'drover.db');
      const db = open(path);
      db.insertInstance({ id: 'i-1', tenant: 't', group: 'web', templateName: 'a', templateHash: 'h', createReason: 'scaleUp', createdAt: new Date(0) });
      expect(db.getInstance('i-1')?.createReason).toBe('scaleUp');
      const raw = new Database(path);
      raw.prepare("UPDATE instances SET drain_reason = 'rotated' WHERE id = 'i-1'").run();
      raw.close();
      expect(() => db.getInstance('i-1')).toThrow(/reading drain_reason from the store: "rotated" is not a reason Drover writes/);
    });

    it('makes the database file readable by the server\'s user only, and a folder it creates 0700', () => {
      const path = join(dir, 'fresh', 'drover.db');
      open(path).close();
      expect(statSync(path).mode & 0o777).toBe(0o600);
      expect(statSync(join(dir, 'fresh')).mode & 0o777).toBe(0o700);
    });

    it('treats close() twice as harmless', () => {
      const db = open();
      db.close();
      expect(() => db.close()).not.toThrow();
    });
  });

  describe('instances', () => {
    it('fills in defaults on insert and returns what it stored', () => {
      const db = open();
      const inserted = db.insertInstance(newInstance('i-1'));
      expect(inserted).toEqual({
        ...newInstance('i-1'),
        providerId: null,
        status: 'creating',
        replaces: null,
        confirmedAt: null,
        healthAt: null,
        firstHealthAt: null,
        unhealthyAt: null,
        providerStatus: null,
        providerCheckedAt: null,
        drainStartedAt: null,
        drainDeadline: null,
        drainAckedAt: null,
        drainReason: null,
        noticeAt: null,
        noticeDeadline: null,
        attempts: 0,
        nextAttemptAt: null,
        lastError: null,
        deletedAt: null,
        deleteReason: null,
        launchHook: null,
        launchHookAt: null,
      });
      expect(db.getInstance('i-1')).toEqual(inserted);
    });

    it('round-trips every field, Dates included', () => {
      const db = open();
      const record = fullRecord('i-1');
      db.insertInstance(record);
      const read = db.getInstance('i-1');
      expect(read).toEqual(record);
      expect(read?.drainDeadline).toBeInstanceOf(Date);
      expect(read?.drainDeadline?.getTime()).toBe(T0 + 7);
    });

    it('returns null for an unknown instance', () => {
      const db = open();
      expect(db.getInstance('nope')).toBeNull();
      expect(db.updateInstance('nope', { attempts: 1 })).toBeNull();
    });

    it('moves a status only as its lifecycle allows, writing the row and its audit entry together', () => {
      const db = open();
      db.insertInstance(newInstance('i-1'));
      const audit = { tenant: 'default', group: 'web', at: at(5), reason: 'scaleUp' };
      const running = db.transition('i-1', 'running', { providerId: 'p-1' }, { ...audit, action: 'created' });
      expect(running).toMatchObject({ status: 'running', providerId: 'p-1' });
      expect(db.listAudit({ instanceId: 'i-1' }).map((e) => e.action)).toEqual(['created']);
      // Not a move of the lifecycle, or not with that audit action: refused, nothing written.
      expect(() => db.transition('i-1', 'creating', {}, { ...audit, action: 'create' })).toThrow(IllegalTransitionError);
      expect(() => db.transition('i-1', 'deleted', { deletedAt: at(6) }, { ...audit, action: 'deleted' })).toThrow(/from running to deleted \(deleted\): not a move its lifecycle allows/);
      expect(db.getInstance('i-1')).toMatchObject({ status: 'running', deletedAt: null });
      expect(db.listAudit({ instanceId: 'i-1' })).toHaveLength(1);
      expect(() => db.transition('nope', 'running', {}, { ...audit, action: 'created' })).toThrow(/no such instance/);
      expect(() => db.updateInstance('i-1', { status: 'deleted' } as never)).toThrow(/only through transition/);
    });

    it('allows each move the table names, and only with the audit actions it names', () => {
      for (const [from, moves] of Object.entries(STATUS_MOVES)) {
        for (const [to, actions] of Object.entries(moves)) {
          for (const action of actions) {
            const db = open();
            db.insertInstance(newInstance('i-1'));
            setRow(db, 'i-1', { status: from as InstanceStatus });
            expect(db.transition('i-1', to as InstanceStatus, {}, { tenant: 'default', group: 'web', at: at(1), action, reason: 'x' }).status).toBe(to);
            expect(moveAllowed(from as InstanceStatus, to as InstanceStatus, 'protect')).toBe(false);
          }
        }
      }
    });

    it('refuses a second instance with the same id', () => {
      const db = open();
      db.insertInstance(newInstance('i-1'));
      expect(() => db.insertInstance(newInstance('i-1'))).toThrow();
    });

    it('updates only the fields in the patch and returns the updated record', () => {
      const db = open();
      db.insertInstance(newInstance('i-1'));
      const updated = db.updateInstance('i-1', { providerId: 'p-1', confirmedAt: at(50), attempts: 2 });
      expect(updated).toMatchObject({ status: 'creating', providerId: 'p-1', attempts: 2, createReason: 'scaleUp', templateHash: 'abc123' });
      expect(updated?.confirmedAt?.getTime()).toBe(T0 + 50);
      expect(db.getInstance('i-1')).toEqual(updated);
    });

    it('applies every field of a full patch', () => {
      const db = open();
      db.insertInstance(newInstance('i-1'));
      const { id: _id, tenant: _tenant, group: _group, status: _status, ...patch } = fullRecord('i-1');
      const updated = db.updateInstance('i-1', patch);
      expect(updated).toEqual({ ...fullRecord('i-1'), tenant: 'default', group: 'web', status: 'creating' });
    });

    it('clears a field patched to null and leaves one patched to undefined alone', () => {
      const db = open();
      db.insertInstance(fullRecord('i-1'));
      const updated = db.updateInstance('i-1', { drainDeadline: null, lastError: null, healthAt: undefined });
      expect(updated?.drainDeadline).toBeNull();
      expect(updated?.lastError).toBeNull();
      expect(updated?.healthAt?.getTime()).toBe(T0 + 3);
    });

    it('returns the record unchanged for an empty patch', () => {
      const db = open();
      db.insertInstance(fullRecord('i-1'));
      expect(db.updateInstance('i-1', {})).toEqual(fullRecord('i-1'));
    });

    it('finds an instance by provider id', () => {
      const db = open();
      db.insertInstance(newInstance('i-1', { providerId: 'p-1' }));
      db.insertInstance(newInstance('i-2', { providerId: 'p-2' }));
      expect(db.findByProviderId('p-2')?.id).toBe('i-2');
      expect(db.findByProviderId('p-3')).toBeNull();
    });

    it('lists instances filtered by tenant and group, leaving deleted ones out unless asked', () => {
      const db = open();
      db.insertInstance(newInstance('a-web-1', { tenant: 'a', group: 'web' }));
      db.insertInstance(newInstance('a-web-2', { tenant: 'a', group: 'web', status: 'deleted', deletedAt: at(5) }));
      db.insertInstance(newInstance('a-api-1', { tenant: 'a', group: 'api', status: 'running' }));
      db.insertInstance(newInstance('b-web-1', { tenant: 'b', group: 'web', status: 'draining' }));

      const ids = (records: InstanceRecord[]): string[] => records.map((r) => r.id).sort();
      expect(ids(db.listInstances())).toEqual(['a-api-1', 'a-web-1', 'b-web-1']);
      expect(ids(db.listInstances({ includeDeleted: true }))).toEqual(['a-api-1', 'a-web-1', 'a-web-2', 'b-web-1']);
      expect(ids(db.listInstances({ tenant: 'a' }))).toEqual(['a-api-1', 'a-web-1']);
      expect(ids(db.listInstances({ group: 'web' }))).toEqual(['a-web-1', 'b-web-1']);
      expect(ids(db.listInstances({ tenant: 'a', group: 'web' }))).toEqual(['a-web-1']);
      expect(ids(db.listInstances({ tenant: 'a', group: 'web', includeDeleted: true }))).toEqual(['a-web-1', 'a-web-2']);
      expect(db.listInstances({ tenant: 'c' })).toEqual([]);
    });

    it('lists instances in one status', () => {
      const db = open();
      db.insertInstance(newInstance('creating-1'));
      db.insertInstance(newInstance('running-1', { status: 'running' }));
      db.insertInstance(newInstance('running-2', { status: 'running', tenant: 'acme' }));
      db.insertInstance(newInstance('deleted-1', { status: 'deleted', deletedAt: at(5) }));
      expect(db.listInstances({ status: 'running' }).map((r) => r.id)).toEqual(['running-2', 'running-1']);
      expect(db.listInstances({ status: 'running', tenant: 'acme' }).map((r) => r.id)).toEqual(['running-2']);
      expect(db.listInstances({ status: 'deleted', includeDeleted: true }).map((r) => r.id)).toEqual(['deleted-1']);
    });

    it('lists the live instances of a group, oldest first, without deleted ones or other groups', () => {
      const db = open();
      db.insertInstance(newInstance('young', { createdAt: at(300) }));
      db.insertInstance(newInstance('old', { createdAt: at(100) }));
      db.insertInstance(newInstance('middle', { createdAt: at(200), status: 'draining' }));
      db.insertInstance(newInstance('gone', { createdAt: at(50), status: 'deleted', deletedAt: at(400) }));
      db.insertInstance(newInstance('other-group', { group: 'api' }));
      db.insertInstance(newInstance('other-tenant', { tenant: 'acme' }));
      expect(db.liveInstances('default', 'web').map((r) => r.id)).toEqual(['old', 'middle', 'young']);
    });

    it('gives the oldest health report among the running instances the plan judges by report age', () => {
      const db = open();
      expect(db.earliestHealthAt('default', 'web')).toBeNull();
      db.insertInstance(newInstance('fresh', { status: 'running', healthAt: at(5_000) }));
      db.insertInstance(newInstance('judged', { status: 'running', healthAt: at(1_000), unhealthyAt: at(2_000) }));
      db.insertInstance(newInstance('noticed', { status: 'running', healthAt: at(1_000), noticeDeadline: at(9_000) }));
      db.insertInstance(newInstance('draining', { status: 'draining', healthAt: at(1_000) }));
      db.insertInstance(newInstance('never', { status: 'running' }));
      db.insertInstance(newInstance('gone', { status: 'deleted', healthAt: at(1_000), deletedAt: at(1_500) }));
      db.insertInstance(newInstance('other-group', { group: 'api', status: 'running', healthAt: at(1_000) }));
      expect(db.earliestHealthAt('default', 'web')).toEqual(at(5_000));
      // Reported after being judged: judged by report age again.
      db.insertInstance(newInstance('recovered', { status: 'running', healthAt: at(3_000), unhealthyAt: at(2_500) }));
      expect(db.earliestHealthAt('default', 'web')).toEqual(at(3_000));
      db.recordHealthBatch([{ instanceId: 'recovered', at: at(6_000) }]);
      expect(db.earliestHealthAt('default', 'web')).toEqual(at(5_000));
    });

    it('stops listing an instance as live once it is marked deleted', () => {
      const db = open();
      db.insertInstance(newInstance('i-1'));
      expect(db.liveInstances('default', 'web')).toHaveLength(1);
      db.transition('i-1', 'deleting', {}, { tenant: 'default', group: 'web', at: at(9), action: 'cancel', reason: 'scaleDown' });
      db.transition('i-1', 'deleted', { deletedAt: at(10) }, { tenant: 'default', group: 'web', at: at(10), action: 'deleted', reason: 'scaleDown' });
      expect(db.liveInstances('default', 'web')).toEqual([]);
      expect(db.groupsWithLiveInstances()).toEqual([]);
    });

    it('lists departed instances of a group deleted at or after a time', () => {
      const db = open();
      db.insertInstance(newInstance('early', { status: 'deleted', deletedAt: at(100) }));
      db.insertInstance(newInstance('boundary', { status: 'deleted', deletedAt: at(200) }));
      db.insertInstance(newInstance('late', { status: 'deleted', deletedAt: at(300) }));
      db.insertInstance(newInstance('live'));
      expect(db.departedInstances('default', 'web', at(200)).map((r) => r.id)).toEqual(['boundary', 'late']);
    });

    it('lists each group that has live instances once', () => {
      const db = open();
      db.insertInstance(newInstance('1', { tenant: 'a', group: 'web' }));
      db.insertInstance(newInstance('2', { tenant: 'a', group: 'web' }));
      db.insertInstance(newInstance('3', { tenant: 'b', group: 'api' }));
      db.insertInstance(newInstance('4', { tenant: 'c', group: 'gone', status: 'deleted', deletedAt: at(1) }));
      const groups = db.groupsWithLiveInstances();
      expect(groups).toHaveLength(2);
      expect(groups).toEqual(expect.arrayContaining([{ tenant: 'a', group: 'web' }, { tenant: 'b', group: 'api' }]));
    });
  });

  describe('health reports', () => {
    it('records a newer report and ignores an older or equal one', () => {
      const db = open();
      db.insertInstance(newInstance('i-1'));
      expect(db.recordHealth('i-1', at(100))).toBe(true);
      expect(db.getInstance('i-1')?.healthAt?.getTime()).toBe(T0 + 100);
      expect(db.recordHealth('i-1', at(50))).toBe(false);
      expect(db.recordHealth('i-1', at(100))).toBe(false);
      expect(db.getInstance('i-1')?.healthAt?.getTime()).toBe(T0 + 100);
      expect(db.recordHealth('i-1', at(150))).toBe(true);
      expect(db.getInstance('i-1')?.healthAt?.getTime()).toBe(T0 + 150);
    });

    it('ignores reports for unknown and deleted instances', () => {
      const db = open();
      db.insertInstance(newInstance('dead', { status: 'deleted', deletedAt: at(1) }));
      expect(db.recordHealth('nope', at(100))).toBe(false);
      expect(db.recordHealth('dead', at(100))).toBe(false);
      expect(db.getInstance('dead')?.healthAt).toBeNull();
      expect(db.getInstance('nope')).toBeNull();
    });

    it("emits exactly one 'firstHealth' change, on an instance's first report only", () => {
      const db = open();
      db.insertInstance(newInstance('i-1', { tenant: 'acme', group: 'api' }));
      db.insertInstance(newInstance('i-2'));
      const changes: StoreChange[] = [];
      db.subscribe((c) => changes.push(c));
      db.recordHealth('i-1', at(100));
      db.recordHealth('i-1', at(200));
      db.recordHealth('i-1', at(50));
      db.recordHealth('nope', at(100));
      expect(changes).toEqual([{ kind: 'firstHealth', instanceId: 'i-1', tenant: 'acme', group: 'api', at: at(100) }]);
      db.recordHealth('i-2', at(300));
      expect(changes.filter((c) => c.kind === 'firstHealth').map((c) => (c.kind === 'firstHealth' ? c.instanceId : ''))).toEqual(['i-1', 'i-2']);
    });

    it('stops telling a listener once it unsubscribes, and survives a listener that throws', () => {
      const db = open();
      db.insertInstance(newInstance('i-1'));
      db.insertInstance(newInstance('i-2'));
      const changes: StoreChange[] = [];
      db.subscribe(() => {
        throw new Error('bad listener');
      });
      const off = db.subscribe((c) => changes.push(c));
      expect(db.recordHealth('i-1', at(1))).toBe(true);
      expect(db.getInstance('i-1')?.healthAt?.getTime()).toBe(T0 + 1);
      off();
      db.recordHealth('i-2', at(1));
      expect(changes).toHaveLength(1);
    });

    it('records a batch of reports in one go, with the same rules, and counts what it recorded', () => {
      const db = open();
      db.insertInstance(newInstance('fresh'));
      db.insertInstance(newInstance('seen', { healthAt: at(500) }));
      db.insertInstance(newInstance('dead', { status: 'deleted', deletedAt: at(1) }));
      const changes: StoreChange[] = [];
      db.subscribe((c) => changes.push(c));

      const recorded = db.recordHealthBatch([
        { instanceId: 'fresh', at: at(100) },
        { instanceId: 'fresh', at: at(200) },
        { instanceId: 'fresh', at: at(150) },
        { instanceId: 'seen', at: at(400) },
        { instanceId: 'seen', at: at(600) },
        { instanceId: 'dead', at: at(100) },
        { instanceId: 'nope', at: at(100) },
      ]);

      expect(recorded).toBe(3);
      expect(db.getInstance('fresh')?.healthAt?.getTime()).toBe(T0 + 200);
      expect(db.getInstance('seen')?.healthAt?.getTime()).toBe(T0 + 600);
      expect(db.getInstance('dead')?.healthAt).toBeNull();
      expect(changes).toEqual([{ kind: 'firstHealth', instanceId: 'fresh', tenant: 'default', group: 'web', at: at(100) }]);
    });

    it('records nothing for an empty batch', () => {
      const db = open();
      expect(db.recordHealthBatch([])).toBe(0);
    });
    it("keeps a deleted instance's last report, and records none after it", () => {
      const db = open();
      db.insertInstance(newInstance('i-1', { status: 'running' }));
      db.recordHealth('i-1', at(100));
      db.recordHealthBatch([{ instanceId: 'i-1', at: at(200) }]);
      db.transition('i-1', 'deleting', {}, { tenant: 'default', group: 'web', at: at(250), action: 'delete', reason: 'scaleDown' });
      expect(db.getInstance('i-1')?.healthAt?.getTime()).toBe(T0 + 200);
      db.transition('i-1', 'deleted', { deletedAt: at(300) }, { tenant: 'default', group: 'web', at: at(300), action: 'deleted', reason: 'scaleDown' });
      expect(db.getInstance('i-1')?.healthAt?.getTime()).toBe(T0 + 200);
      expect(db.recordHealth('i-1', at(400))).toBe(false);
      expect(db.recordHealthBatch([{ instanceId: 'i-1', at: at(500) }])).toBe(0);
      expect(db.listInstances({ includeDeleted: true }).map((i) => i.healthAt?.getTime())).toEqual([T0 + 200]);
    });

    it('takes a health time set by a patch, later or earlier, and clears it with null', () => {
      const db = open();
      db.insertInstance(newInstance('i-1', { status: 'running', healthAt: at(100) }));
      expect(db.updateInstance('i-1', { healthAt: at(50) })?.healthAt?.getTime()).toBe(T0 + 50);
      expect(db.recordHealth('i-1', at(60))).toBe(true);
      expect(db.updateInstance('i-1', { unhealthyAt: at(70) })?.healthAt?.getTime()).toBe(T0 + 60);
      expect(db.updateInstance('i-1', { healthAt: null })?.healthAt).toBeNull();
      expect(db.earliestHealthAt('default', 'web')).toBeNull();
      expect(db.recordHealth('i-1', at(80))).toBe(true);
      expect(db.liveInstances('default', 'web').map((i) => i.healthAt?.getTime())).toEqual([T0 + 80]);
    });
  });

  describe('audit', () => {
    function audit(db: LocalDb, n: number, fields: { tenant?: string; group?: string; instanceId?: string | null } = {}): void {
      for (let i = 0; i < n; i++) {
        db.appendAudit({
          at: at(i),
          tenant: fields.tenant ?? 'default',
          group: fields.group ?? 'web',
          instanceId: fields.instanceId === undefined ? `i-${i}` : fields.instanceId,
          action: 'create',
          reason: `r${i}`,
        });
      }
    }

    it('assigns increasing sequence numbers and fills in defaults', () => {
      const db = open();
      const a = db.appendAudit({ at: at(1), tenant: 't', group: 'g', instanceId: null, action: 'scale', reason: 'operator' });
      const b = db.appendAudit({
        at: at(2),
        tenant: 't',
        group: 'g',
        instanceId: 'i-1',
        action: 'drain',
        reason: 'expiry',
        actor: 'alice',
        detail: 'why',
        epoch: 7,
        event: 'Tick',
      });
      expect(b.seq).toBeGreaterThan(a.seq);
      expect(a).toMatchObject({ actor: 'reconciler', detail: null, epoch: null, event: null });
      expect(db.listAudit()).toEqual([a, b]);
      expect(db.listAudit()[1]).toEqual({
        seq: b.seq,
        at: at(2),
        tenant: 't',
        group: 'g',
        instanceId: 'i-1',
        action: 'drain',
        reason: 'expiry',
        actor: 'alice',
        detail: 'why',
        epoch: 7,
        event: 'Tick',
      });
    });

    it("tells subscribers about each entry as an 'audit' change", () => {
      const db = open();
      const changes: StoreChange[] = [];
      db.subscribe((c) => changes.push(c));
      const entry = db.appendAudit({ at: at(1), tenant: 't', group: 'g', instanceId: null, action: 'scale', reason: 'operator' });
      expect(changes).toEqual([{ kind: 'audit', entry }]);
    });

    it('filters by instance, tenant, group and sequence', () => {
      const db = open();
      audit(db, 3, { tenant: 'a', group: 'web' });
      audit(db, 2, { tenant: 'a', group: 'api' });
      audit(db, 4, { tenant: 'b', group: 'web' });
      expect(db.listAudit()).toHaveLength(9);
      expect(db.listAudit({ tenant: 'a' })).toHaveLength(5);
      expect(db.listAudit({ group: 'web' })).toHaveLength(7);
      expect(db.listAudit({ tenant: 'b', group: 'web' }).every((e) => e.tenant === 'b' && e.group === 'web')).toBe(true);
      expect(db.listAudit({ tenant: 'b', group: 'web' })).toHaveLength(4);
      // i-1 appears once in each of the three runs.
      expect(db.listAudit({ instanceId: 'i-1' }).map((e) => [e.tenant, e.group])).toEqual([
        ['a', 'web'],
        ['a', 'api'],
        ['b', 'web'],
      ]);
      const all = db.listAudit();
      const cut = all[5]!.seq;
      expect(db.listAudit({ afterSeq: cut }).map((e) => e.seq)).toEqual(all.slice(6).map((e) => e.seq));
      expect(db.listAudit({ afterSeq: all[8]!.seq })).toEqual([]);
    });

    it('returns the newest N entries, oldest first, when limited; after a sequence number, the oldest N after it', () => {
      const db = open();
      audit(db, 10);
      const all = db.listAudit();
      const seqs = all.map((e) => e.seq);
      expect(seqs).toEqual([...seqs].sort((x, y) => x - y));
      expect(db.listAudit({ limit: 3 }).map((e) => e.seq)).toEqual(seqs.slice(-3));
      expect(db.listAudit({ limit: 3, afterSeq: seqs[2] }).map((e) => e.seq)).toEqual(seqs.slice(3, 6));
      expect(db.listAudit({ limit: 3, beforeSeq: seqs[5] }).map((e) => e.seq)).toEqual(seqs.slice(2, 5));
      expect(db.listAudit({ limit: 100 })).toHaveLength(10);
    });

    it('returns at most 1000 entries by default', () => {
      const db = open();
      db.transaction(() => audit(db, 1_005));
      const listed = db.listAudit();
      expect(listed).toHaveLength(1_000);
      expect(listed[listed.length - 1]!.reason).toBe('r1004');
    });
  });

  describe('tenants, paging and retention', () => {
    it('lists only the given tenants\' instances and audit entries', () => {
      const db = open();
      for (const [id, tenant] of [['i-1', 'a'], ['i-2', 'b'], ['i-3', 'c']] as const) {
        db.insertInstance(newInstance(id, { tenant }));
        db.appendAudit({ at: at(0), tenant, group: 'web', instanceId: id, action: 'create', reason: 'scaleUp' });
      }
      expect(db.listInstances({ tenants: ['a', 'c'] }).map((i) => i.id)).toEqual(['i-1', 'i-3']);
      expect(db.listAudit({ tenants: ['b'] }).map((e) => e.instanceId)).toEqual(['i-2']);
      expect(db.listInstances({ tenants: [] })).toEqual([]);
      expect(db.listAudit({ tenants: [] })).toEqual([]);
    });

    it('pages instances with a cursor, in list order, without skipping or repeating', () => {
      const db = open();
      for (let k = 0; k < 25; k++) db.insertInstance(newInstance(`i-${String(k).padStart(2, '0')}`, { tenant: k % 2 ? 'b' : 'a', createdAt: at(k % 5) }));
      const all = db.listInstances();
      const paged: string[] = [];
      let after: string | undefined;
      for (;;) {
        const page = db.listInstances({ limit: 7, ...(after ? { after } : {}) });
        paged.push(...page.map((i) => i.id));
        if (page.length < 7) break;
        after = instanceCursor(page[page.length - 1]!);
      }
      expect(paged).toEqual(all.map((i) => i.id));
      expect(() => db.listInstances({ after: 'not-a-cursor' })).toThrow(/not a cursor/);
    });

    it('purges audit entries and deleted instances older than the cutoff, and nothing else', () => {
      const db = open();
      db.insertInstance(newInstance('old-deleted', { status: 'deleted', deletedAt: at(10) }));
      db.insertInstance(newInstance('new-deleted', { status: 'deleted', deletedAt: at(50) }));
      db.insertInstance(newInstance('old-live', { createdAt: at(0) }));
      db.appendAudit({ at: at(10), tenant: 'default', group: 'web', instanceId: 'old-deleted', action: 'deleted', reason: 'scaleDown' });
      db.appendAudit({ at: at(50), tenant: 'default', group: 'web', instanceId: 'new-deleted', action: 'deleted', reason: 'scaleDown' });
      expect(db.purgeBefore(at(20))).toEqual({ audit: 1, instances: 1 });
      expect(db.listInstances({ includeDeleted: true }).map((i) => i.id).sort()).toEqual(['new-deleted', 'old-live']);
      expect(db.listAudit().map((e) => e.instanceId)).toEqual(['new-deleted']);
    });
  });

  describe('agent bootstrap tokens', () => {
    const hash = (n: number): string => n.toString(16).padStart(64, '0');

    it('keeps a token by its hash with its instance, expiry and use, and marks it used only once', () => {
      const db = open();
      expect(db.getBootstrapToken(hash(1))).toBeNull();
      db.insertBootstrapToken({ tokenHash: hash(1), instanceId: 'i-1', issuedAt: at(0), expiresAt: at(1_000) });
      expect(db.getBootstrapToken(hash(1))).toEqual({ tokenHash: hash(1), instanceId: 'i-1', issuedAt: at(0), expiresAt: at(1_000), usedAt: null, refusals: 0 });
      expect(db.bootstrapTokenUsedAt('i-1')).toBeNull();
      expect(db.markBootstrapTokenUsed(hash(1), at(10))).toBe(true);
      expect(db.markBootstrapTokenUsed(hash(1), at(20))).toBe(false);
      expect(db.getBootstrapToken(hash(1))?.usedAt).toEqual(at(10));
      expect(db.markBootstrapTokenUsed(hash(9), at(20))).toBe(false);
    });

    it('tells that an instance used one of its tokens, whichever it was', () => {
      const db = open();
      db.insertBootstrapToken({ tokenHash: hash(1), instanceId: 'i-1', issuedAt: at(0), expiresAt: at(1_000) });
      db.insertBootstrapToken({ tokenHash: hash(2), instanceId: 'i-1', issuedAt: at(5), expiresAt: at(1_005) });
      db.insertBootstrapToken({ tokenHash: hash(3), instanceId: 'i-2', issuedAt: at(5), expiresAt: at(1_005) });
      db.markBootstrapTokenUsed(hash(2), at(30));
      expect(db.bootstrapTokenUsedAt('i-1')).toEqual(at(30));
      expect(db.bootstrapTokenUsedAt('i-2')).toBeNull();
    });

    it('counts refusals per token', () => {
      const db = open();
      db.insertBootstrapToken({ tokenHash: hash(1), instanceId: 'i-1', issuedAt: at(0), expiresAt: at(1_000) });
      expect(db.countBootstrapRefusal(hash(1))).toBe(1);
      expect(db.countBootstrapRefusal(hash(1))).toBe(2);
      expect(db.countBootstrapRefusal(hash(7))).toBe(0);
      expect(db.getBootstrapToken(hash(1))?.refusals).toBe(2);
    });

    it('purges the tokens of instances whose tokens have all expired, and keeps every token of an instance with one still valid', () => {
      const db = open();
      db.insertBootstrapToken({ tokenHash: hash(1), instanceId: 'gone', issuedAt: at(0), expiresAt: at(100) });
      db.insertBootstrapToken({ tokenHash: hash(2), instanceId: 'gone', issuedAt: at(0), expiresAt: at(150) });
      db.insertBootstrapToken({ tokenHash: hash(3), instanceId: 'mixed', issuedAt: at(0), expiresAt: at(100) });
      db.insertBootstrapToken({ tokenHash: hash(4), instanceId: 'mixed', issuedAt: at(0), expiresAt: at(300) });
      db.markBootstrapTokenUsed(hash(3), at(50));
      expect(db.purgeBootstrapTokens(at(200))).toBe(2);
      expect(db.getBootstrapToken(hash(1))).toBeNull();
      expect(db.getBootstrapToken(hash(2))).toBeNull();
      // The used (and expired) token stays while its sibling is valid: it still refuses the sibling.
      expect(db.getBootstrapToken(hash(3))?.usedAt).toEqual(at(50));
      expect(db.bootstrapTokenUsedAt('mixed')).toEqual(at(50));
    });
  });

  describe('durable timers', () => {
    it('sets, lists by due time, replaces and deletes timers', () => {
      const db = open();
      db.setTimer('b', 200, 'B');
      db.setTimer('a', 300, 'A');
      db.setTimer('c', 100, 'C');
      expect(db.listTimers()).toEqual([
        { key: 'c', dueAt: 100, event: 'C' },
        { key: 'b', dueAt: 200, event: 'B' },
        { key: 'a', dueAt: 300, event: 'A' },
      ]);
      db.setTimer('a', 50, 'A2');
      expect(db.listTimers()[0]).toEqual({ key: 'a', dueAt: 50, event: 'A2' });
      expect(db.listTimers()).toHaveLength(3);
      db.deleteTimer('b');
      db.deleteTimer('unknown');
      expect(db.listTimers().map((t) => t.key)).toEqual(['a', 'c']);
    });
  });

  describe('group state', () => {
    it('has no state for a group never touched', () => {
      const db = open();
      expect(db.getGroupState('default', 'web')).toBeNull();
      expect(db.listGroupStates()).toEqual([]);
    });

    it('sets and clears a create hold', () => {
      const db = open();
      db.setCreateHold('default', 'web', { key: 'k1', reason: 'quota exceeded', at: at(2) });
      expect(db.getGroupState('default', 'web')).toEqual({ tenant: 'default', group: 'web', holdKey: 'k1', holdReason: 'quota exceeded', holdAt: at(2), removalSince: null, brakeSince: null });
      db.setCreateHold('default', 'web', null);
      expect(db.getGroupState('default', 'web')).toMatchObject({ holdKey: null, holdReason: null, holdAt: null });
    });

    it('clears every create hold at once', () => {
      const db = open();
      db.setCreateHold('a', 'web', { key: 'k1', reason: 'r1', at: at(1) });
      db.setCreateHold('b', 'api', { key: 'k2', reason: 'r2', at: at(2) });
      db.clearCreateHolds();
      const states = db.listGroupStates();
      expect(states).toHaveLength(2);
      for (const state of states) expect(state).toMatchObject({ holdKey: null, holdReason: null, holdAt: null });
    });

    it('records since when a group has been gone from the config, beside its create hold, and clears it', () => {
      const db = open();
      db.setCreateHold('default', 'web', { key: 'k1', reason: 'r', at: at(1) });
      db.setRemovalSince('default', 'web', at(5));
      expect(db.getGroupState('default', 'web')).toMatchObject({ holdKey: 'k1', removalSince: at(5) });
      db.setRemovalSince('default', 'web', null);
      expect(db.getGroupState('default', 'web')).toMatchObject({ holdKey: 'k1', removalSince: null });
      db.setRemovalSince('a', 'new', at(7));
      expect(db.getGroupState('a', 'new')).toMatchObject({ holdKey: null, removalSince: at(7) });
    });

    it('keeps state per (tenant, group)', () => {
      const db = open();
      db.setCreateHold('a', 'web', { key: 'k1', reason: 'r', at: at(1) });
      db.setCreateHold('b', 'web', { key: 'k2', reason: 'r', at: at(1) });
      expect(db.getGroupState('a', 'web')?.holdKey).toBe('k1');
      expect(db.getGroupState('b', 'web')?.holdKey).toBe('k2');
      expect(db.getGroupState('a', 'api')).toBeNull();
    });
  });

  describe('operator state', () => {
    it('stores, replaces, lists and deletes JSON values by key, and keeps them across a reopen', () => {
      const path = join(dir, 'op.db');
      const db = openLocalDb(path);
      db.setOperatorState('size/default/web', '{"size":3}', at(1));
      db.setOperatorState('size/default/web', '{"size":4}', at(2));
      db.setOperatorState('protect/i-1', '{"until":"x"}', at(3));
      expect(db.listOperatorState().map((e) => [e.key, e.value])).toEqual([
        ['protect/i-1', '{"until":"x"}'],
        ['size/default/web', '{"size":4}'],
      ]);
      db.setOperatorState('protect/i-1', null, at(4));
      db.close();
      const again = openLocalDb(path);
      expect(again.listOperatorState()).toEqual([{ key: 'size/default/web', value: '{"size":4}', updatedAt: at(2) }]);
      again.close();
    });
  });

  describe('transactions', () => {
    it('lands all writes of a transaction or none', () => {
      const db = open();
      expect(() =>
        db.transaction(() => {
          db.insertInstance(newInstance('i-1'));
          db.setTimer('t', 1, 'E');
          throw new Error('abort');
        }),
      ).toThrow('abort');
      expect(db.getInstance('i-1')).toBeNull();
      expect(db.listTimers()).toEqual([]);
      expect(db.transaction(() => db.insertInstance(newInstance('i-2')).id)).toBe('i-2');
      expect(db.getInstance('i-2')).not.toBeNull();
    });
  });
});
