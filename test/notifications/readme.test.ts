/**
 * src/notifications/README.md's event table is the catalogue: one row per event type, each
 * naming the audit actions it comes from, as catalogue.ts maps them.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { EVENT_OF_AUDIT_ACTION, NOTIFICATION_EVENT_TYPES } from '../../src/notifications/index.js';

const README = readFileSync(join(import.meta.dirname, '../../src/notifications/README.md'), 'utf8');

/** The rows of the "## Events" table: type → the audit actions its "from" cell names. */
function documented(): Map<string, string[]> {
  const section = README.split(/^## Events$/m)[1]?.split(/^## /m)[0] ?? '';
  const rows = new Map<string, string[]>();
  for (const m of section.matchAll(/^\| `(\w+)` \|[^\n]*\| ([^|\n]*) \|$/gm)) {
    const from = m[2] ?? '';
    rows.set(m[1] ?? '', from.startsWith('audit ') ? [...from.matchAll(/`(\w+)`/g)].map((a) => a[1] ?? '') : []);
  }
  return rows;
}

describe('the notifications README', () => {
  it('lists every event type, and no other', () => {
    expect([...documented().keys()].sort()).toEqual([...NOTIFICATION_EVENT_TYPES].sort());
  });

  it('names, for each event, exactly the audit actions it comes from', () => {
    const rows = documented();
    for (const type of NOTIFICATION_EVENT_TYPES) {
      const actions = Object.entries(EVENT_OF_AUDIT_ACTION)
        .filter(([, event]) => event === type)
        .map(([action]) => action)
        .sort();
      expect([...(rows.get(type) ?? [])].sort(), type).toEqual(actions);
    }
  });
});
