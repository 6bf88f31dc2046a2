/**
 * What the event stream said changed, gathered between two refreshes of the views. Pure (no DOM),
 * so the rule that decides whether a view's data is current is tested under Node.
 */

/** What changed: everything, or some groups ("tenant/group") and instances. */
export interface Change {
  all: boolean;
  groups: ReadonlySet<string>;
  instances: ReadonlySet<string>;
  /**
   * performance.now() of the newest event behind this change. The server sends an event after
   * the write it describes commits, so data fetched after the newest event includes every write
   * of the change; data fetched between the first and the last event may miss the later ones.
   */
  latest: number;
}

/** Collects the changes that arrive during one debounce window. */
export class ChangeCollector {
  private pending: { all: boolean; groups: Set<string>; instances: Set<string>; latest: number } | null = null;

  /** Records an event that arrived at `at` (performance.now()). */
  note(what: { all?: boolean; group?: string | null; instance?: string | null }, at: number): void {
    const p = (this.pending ??= { all: false, groups: new Set(), instances: new Set(), latest: at });
    p.latest = Math.max(p.latest, at);
    if (what.all) p.all = true;
    if (what.group) p.groups.add(what.group);
    if (what.instance) p.instances.add(what.instance);
  }

  /** The change gathered so far (null when none), and a fresh start. */
  take(): Change | null {
    const change = this.pending;
    this.pending = null;
    return change;
  }
}

/** Whether data fetched from `fetchStartedAt` on already shows `change` (no refetch needed). */
export function fetchedAfter(change: Change, fetchStartedAt: number): boolean {
  return change.latest < fetchStartedAt;
}
