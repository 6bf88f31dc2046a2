/**
 * OperatorState: decisions operators make through the API (a group's size, an instance's
 * protection, a held rotation) that must survive restarts — and, in HA mode, failovers. Reads are
 * synchronous from a cache kept current by the implementation; writes are asynchronous and, in
 * HA mode, only the leader's succeed (guarded by its leadership epoch).
 *
 * Values are JSON. Keys are namespaced: see `keys` below.
 */
import { z } from 'zod';
import type { LocalDb } from '../store/index.js';

export interface OperatorState {
  get<T>(key: string): T | undefined;
  /** Entries whose key starts with `prefix`, in key order. */
  list<T>(prefix: string): Array<{ key: string; value: T }>;
  /**
   * Whether any entry's key is in the namespace `namespace` (its text up to and including the
   * first "/", e.g. "protect/"). Constant time: a planner that looks up one key per instance
   * skips the lookups when the namespace is empty (a million instances, no protection).
   */
  anyIn(namespace: string): boolean;
  /** Writes a value (null deletes). Rejects with NotLeaderError when this replica may not write. */
  set(key: string, value: unknown): Promise<void>;
  /** Called with the key after every change (local or from another replica). */
  onChange(listener: (key: string) => void): () => void;
}

// The values' schemas: what is read back from etcd (another replica's write, or anything an
// operator with etcd access put there) is checked against them before it is acted on. Objects
// are not strict: a newer replica may add a field, which an older one must not take as garbage
// during a rolling upgrade (the extra field is dropped, the known ones are checked).
const isoTime = z.iso.datetime({ offset: true, error: 'must be an ISO 8601 time' });
const actor = z.string().max(256);

/** A group's size set through the API; it stands while the configured size is still `base`. */
export const sizeOverrideSchema = z.object({
  // The API's bound on a size (PUT /v1/groups/:tenant/:group/size).
  size: z.number().int().min(0).max(100_000),
  base: z.number().int().min(0),
  at: isoTime,
  by: actor,
});
export type SizeOverride = z.output<typeof sizeOverrideSchema>;

/** An instance protected from voluntary disruption until `until`. */
export const protectionSchema = z.object({ until: isoTime, at: isoTime, by: actor });
export type Protection = z.output<typeof protectionSchema>;

/** A cancelled rotation or operator drain: the instance is not picked again until `until`. */
export const rotationHoldSchema = z.object({ until: isoTime, reason: z.string().max(1_024), by: actor });
export type RotationHold = z.output<typeof rotationHoldSchema>;

/** An operator's request to drain an instance, replacement first. */
export const drainRequestSchema = z.object({ force: z.boolean(), at: isoTime, by: actor });
export type DrainRequest = z.output<typeof drainRequestSchema>;

/** A tenant put to sleep: its groups have an effective size of 0 until woken (or until `until`). */
export const sleepSchema = z.object({ until: isoTime.nullable(), at: isoTime, by: actor });
export type TenantSleep = z.output<typeof sleepSchema>;

/**
 * When the leader first saw a group's configured size (or saw it change): the config's size is
 * in force from then until a later schedule, operator or autoscale decision.
 */
export const configSizeSeenSchema = z.object({
  size: z.number().int().min(0).max(100_000),
  since: isoTime,
  /** The size last applied and audited, and what set it ("schedule@<time>"): a change is audited once. */
  applied: z.object({ size: z.number().int().min(0).max(100_000), by: z.string().max(256) }).optional(),
});
export type ConfigSizeSeen = z.output<typeof configSizeSeenSchema>;

const groupSize = z.number().int().min(0).max(100_000);

/** The autoscaler's durable memory of a group: its last decision, cooldowns, recent recommendations. */
export const autoscaleStateSchema = z.object({
  /** The size it last set, and when; null before it first changed the size. */
  size: groupSize.nullable(),
  at: isoTime.nullable(),
  /** The last scale-up and scale-down by anyone (the cooldowns start there). */
  lastScaleUpAt: isoTime.nullable(),
  lastScaleDownAt: isoTime.nullable(),
  /** Recommendations within the stabilisation window, oldest first. */
  recommendations: z.array(z.object({ at: isoTime, size: groupSize })).max(4_096),
  /** The last evaluation: the value read, the size it recommends, and what was decided and why. */
  last: z
    .object({ at: isoTime, value: z.number().nullable(), recommended: groupSize.nullable(), decision: z.string().max(2_048) })
    .nullable(),
  /** Why autoscale cannot act (a query that failed or gave no number), since when; null when it can. */
  blocked: z.object({ message: z.string().max(2_048), since: isoTime }).nullable(),
});
export type AutoscaleState = z.output<typeof autoscaleStateSchema>;

export const keys = {
  size: (tenant: string, group: string): string => `size/${tenant}/${group}`,
  protection: (instanceId: string): string => `protect/${instanceId}`,
  hold: (instanceId: string): string => `hold/${instanceId}`,
  drainRequest: (instanceId: string): string => `drain/${instanceId}`,
  sleep: (tenant: string): string => `sleep/${tenant}`,
  configSize: (tenant: string, group: string): string => `sized/${tenant}/${group}`,
  autoscale: (tenant: string, group: string): string => `autoscale/${tenant}/${group}`,
} as const;

/** The schema of the values under each kind of key (the key's first segment). */
const SCHEMA_OF_KIND: Readonly<Record<string, z.ZodType>> = {
  size: sizeOverrideSchema,
  protect: protectionSchema,
  hold: rotationHoldSchema,
  drain: drainRequestSchema,
  sleep: sleepSchema,
  sized: configSizeSeenSchema,
  autoscale: autoscaleStateSchema,
};

/** A value checked against its key's schema: the value as read (unknown fields dropped), or what is wrong with it. */
export type CheckedValue = { ok: true; value: unknown } | { ok: false; problem: string };

/** Checks `value` against the schema of `key`'s kind; a key of no known kind is refused (nothing would read it). */
export function checkOperatorValue(key: string, value: unknown): CheckedValue {
  const kind = key.split('/', 1)[0] ?? '';
  const schema = Object.hasOwn(SCHEMA_OF_KIND, kind) ? SCHEMA_OF_KIND[kind] : undefined;
  if (!schema) return { ok: false, problem: `no operator state kind "${kind}"` };
  const parsed = schema.safeParse(value);
  if (parsed.success) return { ok: true, value: parsed.data };
  return { ok: false, problem: parsed.error.issues.map((i) => (i.path.length ? `${i.path.join('.')}: ${i.message}` : i.message)).join('; ') };
}

/** A key's namespace: its text up to and including the first "/" (the whole key without one). */
function namespaceOf(key: string): string {
  const slash = key.indexOf('/');
  return slash < 0 ? key : key.slice(0, slash + 1);
}

/** The cache: a Map that also counts its keys per namespace (for `anyIn`), however it is changed. */
class NamespacedCache extends Map<string, unknown> {
  private counts: Map<string, number> | undefined;

  override set(key: string, value: unknown): this {
    // Map's constructor calls set before the subclass's fields exist.
    this.counts ??= new Map();
    if (!this.has(key)) this.counts.set(namespaceOf(key), (this.counts.get(namespaceOf(key)) ?? 0) + 1);
    return super.set(key, value);
  }

  override delete(key: string): boolean {
    if (!super.delete(key)) return false;
    const ns = namespaceOf(key);
    const left = (this.counts?.get(ns) ?? 1) - 1;
    if (left > 0) this.counts?.set(ns, left);
    else this.counts?.delete(ns);
    return true;
  }

  override clear(): void {
    super.clear();
    this.counts?.clear();
  }

  anyIn(namespace: string): boolean {
    return (this.counts?.get(namespace) ?? 0) > 0;
  }
}

/** The read side both implementations share: a cache of values by key, and change listeners. */
export abstract class CachedOperatorState implements OperatorState {
  protected readonly cache = new NamespacedCache();

  anyIn(namespace: string): boolean {
    return this.cache.anyIn(namespace);
  }
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
