/**
 * OperatorState: decisions operators make through the API (a group's size, an instance's
 * protection, a held rotation) that must survive restarts — and, in HA mode, failovers. Reads are
 * synchronous from a cache kept current by the implementation; writes are asynchronous and, in
 * HA mode, only the leader's succeed (guarded by its leadership epoch).
 *
 * Values are JSON. Keys are namespaced: see `keys` below.
 */
import type { LocalDb } from '../store/index.js';

export interface OperatorState {
  get<T>(key: string): T | undefined;
  /** Entries whose key starts with `prefix`, in key order. */
  list<T>(prefix: string): Array<{ key: string; value: T }>;
  /** Writes a value (null deletes). Rejects with NotLeaderError when this replica may not write. */
  set(key: string, value: unknown): Promise<void>;
  /** Called with the key after every change (local or from another replica). */
  onChange(listener: (key: string) => void): () => void;
}

/** A group's size set through the API; it stands while the configured size is still `base`. */
export interface SizeOverride {
  size: number;
  base: number;
  at: string;
  by: string;
}

/** An instance protected from voluntary disruption until `until`. */
export interface Protection {
  until: string;
  at: string;
  by: string;
}

/** A cancelled rotation or operator drain: the instance is not picked again until `until`. */
export interface RotationHold {
  until: string;
  reason: string;
  by: string;
}

/** An operator's request to drain an instance, replacement first. */
export interface DrainRequest {
  force: boolean;
  at: string;
  by: string;
}

export const keys = {
  size: (tenant: string, group: string): string => `size/${tenant}/${group}`,
  protection: (instanceId: string): string => `protect/${instanceId}`,
  hold: (instanceId: string): string => `hold/${instanceId}`,
  drainRequest: (instanceId: string): string => `drain/${instanceId}`,
} as const;

/** The read side both implementations share: a cache of values by key, and change listeners. */
export abstract class CachedOperatorState implements OperatorState {
  protected readonly cache = new Map<string, unknown>();
  protected readonly listeners = new Set<(key: string) => void>();

  get<T>(key: string): T | undefined {
    return this.cache.get(key) as T | undefined;
  }

  list<T>(prefix: string): Array<{ key: string; value: T }> {
    return [...this.cache.entries()]
      .filter(([k]) => k.startsWith(prefix))
      .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))
      .map(([key, value]) => ({ key, value: value as T }));
  }

  abstract set(key: string, value: unknown): Promise<void>;

  onChange(listener: (key: string) => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }
}

/** The single-server implementation: a table in the local SQLite database. */
export class LocalOperatorState extends CachedOperatorState {

  constructor(
    private readonly db: LocalDb,
    private readonly now: () => Date,
  ) {
    super();
    for (const row of db.listOperatorState()) {
      try {
        this.cache.set(row.key, JSON.parse(row.value));
      } catch {
        // An unreadable entry is skipped; the next write replaces it.
      }
    }
  }

  async set(key: string, value: unknown): Promise<void> {
    this.db.setOperatorState(key, value === null || value === undefined ? null : JSON.stringify(value), this.now());
    if (value === null || value === undefined) this.cache.delete(key);
    else this.cache.set(key, value);
    for (const listener of this.listeners) listener(key);
  }
}
