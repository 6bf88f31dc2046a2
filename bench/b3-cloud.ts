/**
 * B3's simulated cloud: the fleet's provider-side instances kept in their own SQLite file (not
 * in the measured process's heap, as a real cloud keeps them elsewhere), listed the way EC2's
 * DescribeInstances lists them: pages of at most 1,000 instances, fetched one after the other
 * (each page needs the previous page's token), with a latency per page.
 *
 * Only `list` is expected in B3 (the fleet is at rest): every other call is counted and refused,
 * so a pass that wants to change anything shows up as calls (and the scenario fails).
 */
import Database from 'better-sqlite3';
import type { Clock } from '../src/index.js';
import { TAG, type Provider, type ProviderCreateRequest, type ProviderInstance, type ProviderStatus } from '../src/providers/index.js';

/** EC2 DescribeInstances answers at most 1,000 instances per page (`MaxResults`). */
export const CLOUD_PAGE_SIZE = 1_000;

export interface CloudRow {
  providerId: string;
  instanceId: string;
  tenant: string;
  group: string;
  templateName: string;
  templateHash: string;
  createdAt: Date;
}

const SCHEMA = `CREATE TABLE IF NOT EXISTS cloud (
  n INTEGER PRIMARY KEY,
  provider_id TEXT NOT NULL,
  status TEXT NOT NULL,
  shard TEXT NOT NULL,
  instance_id TEXT NOT NULL,
  tenant TEXT NOT NULL,
  grp TEXT NOT NULL,
  template_name TEXT NOT NULL,
  template_hash TEXT NOT NULL,
  created_at TEXT NOT NULL
)`;

/** Writes the cloud's side of the fleet (one transaction; the caller's loop supplies rows). */
export function writeCloud(path: string, shard: string, rows: Iterable<CloudRow>): number {
  const db = new Database(path);
  db.pragma('journal_mode = WAL');
  db.pragma('synchronous = NORMAL');
  db.exec(SCHEMA);
  const insert = db.prepare('INSERT INTO cloud (provider_id, status, shard, instance_id, tenant, grp, template_name, template_hash, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)');
  let n = 0;
  db.transaction(() => {
    for (const r of rows) {
      insert.run(r.providerId, 'running', shard, r.instanceId, r.tenant, r.group, r.templateName, r.templateHash, r.createdAt.toISOString());
      n++;
    }
  })();
  db.close();
  return n;
}

export interface TableCloudOptions {
  clock: Clock;
  /** Latency of each page of `list` (0: none). */
  pageLatencyMs?: number;
  pageSize?: number;
}

export class TableCloud implements Provider {
  readonly kind = 'sim';
  private readonly db: Database.Database;
  private readonly page: Database.Statement<[string, number, number], unknown[]>;
  private readonly clock: Clock;
  private readonly pageLatencyMs: number;
  private readonly pageSize: number;
  readonly stats = { list: 0, pages: 0, listed: 0, create: 0, delete: 0, status: 0, setTags: 0 };

  constructor(path: string, options: TableCloudOptions) {
    this.db = new Database(path, { readonly: true });
    this.clock = options.clock;
    this.pageLatencyMs = options.pageLatencyMs ?? 0;
    this.pageSize = options.pageSize ?? CLOUD_PAGE_SIZE;
    this.page = this.db
      .prepare<[string, number, number], unknown[]>(
        'SELECT n, provider_id, status, shard, instance_id, tenant, grp, template_name, template_hash, created_at FROM cloud WHERE shard = ? AND n > ? ORDER BY n LIMIT ?',
      )
      .raw();
  }

  async list(tags: Record<string, string>): Promise<ProviderInstance[]> {
    this.stats.list++;
    const shard = tags[TAG.shard];
    if (shard === undefined || Object.keys(tags).length !== 1) throw new Error('B3 cloud: list by the shard tag alone is supported');
    const out: ProviderInstance[] = [];
    let after = 0;
    for (;;) {
      // The page's round trip; the next page is asked for only once this one is in (NextToken).
      if (this.pageLatencyMs > 0) await this.clock.sleep(this.pageLatencyMs);
      const rows = this.page.all(shard, after, this.pageSize);
      this.stats.pages++;
      for (const r of rows) {
        out.push({
          providerId: r[1] as string,
          status: r[2] as ProviderStatus,
          tags: {
            [TAG.shard]: r[3] as string,
            [TAG.tenant]: r[5] as string,
            [TAG.group]: r[6] as string,
            [TAG.instanceId]: r[4] as string,
            [TAG.templateHash]: r[8] as string,
            [TAG.templateName]: r[7] as string,
            [TAG.createdAt]: r[9] as string,
          },
        });
      }
      if (rows.length < this.pageSize) break;
      after = rows[rows.length - 1]![0] as number;
    }
    this.stats.listed += out.length;
    return out;
  }

  create(_req: ProviderCreateRequest): Promise<ProviderInstance> {
    this.stats.create++;
    return Promise.reject(new Error('B3 cloud: create refused (the fleet is at rest)'));
  }

  delete(_providerId: string): Promise<void> {
    this.stats.delete++;
    return Promise.reject(new Error('B3 cloud: delete refused (the fleet is at rest)'));
  }

  status(_providerId: string): Promise<ProviderStatus> {
    this.stats.status++;
    return Promise.reject(new Error('B3 cloud: status refused (the fleet is at rest)'));
  }

  setTags(_providerId: string, _tags: Record<string, string>): Promise<void> {
    this.stats.setTags++;
    return Promise.reject(new Error('B3 cloud: setTags refused (the fleet is at rest)'));
  }

  close(): void {
    this.db.close();
  }
}
