/**
 * Property tests for the config parser: it never throws, accepts every valid config it is given
 * (keeping its values), and reports every injected fault with its path.
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { ConfigLoader, formatDuration, parseConfig, parseDuration, templateHash } from '../../src/config/index.js';

const DAY = 86_400_000;
const name = fc.stringMatching(/^[A-Za-z0-9][A-Za-z0-9_.-]{0,8}$/);
const ms = fc.integer({ min: 0, max: 40 * DAY });
const positiveMs = fc.integer({ min: 1, max: 40 * DAY });

interface GroupInput {
  size: number;
  template: string;
  drainTimeout?: string;
  maxSurge?: number;
  startupTimeout?: string;
  expiry?: { eligibleAge: string; forcedAge: string };
}

interface ValidConfig {
  shard: Record<string, unknown>;
  templates: Record<string, Record<string, unknown>>;
  groups: Record<string, Record<string, GroupInput>>;
}

/** A valid config, with the values it should parse to. */
const arbConfig: fc.Arbitrary<ValidConfig> = fc
  .record({
    templateNames: fc.uniqueArray(name, { minLength: 1, maxLength: 3 }),
    tenants: fc.uniqueArray(name, { minLength: 1, maxLength: 2 }),
    groupNames: fc.uniqueArray(name, { minLength: 1, maxLength: 3 }),
    health: positiveMs,
    threshold: fc.integer({ min: 1, max: 10 }),
    drain: ms,
    groups: fc.array(
      fc.record({
        size: fc.integer({ min: 0, max: 1000 }),
        template: fc.nat(),
        drainTimeout: fc.option(ms, { nil: undefined }),
        maxSurge: fc.option(fc.integer({ min: 0, max: 10 }), { nil: undefined }),
        startupTimeout: fc.option(positiveMs, { nil: undefined }),
        eligible: fc.option(fc.integer({ min: 1, max: 20 * DAY }), { nil: undefined }),
        extra: fc.integer({ min: 1, max: 20 * DAY }),
      }),
      { minLength: 6, maxLength: 6 },
    ),
  })
  .map((r) => {
    const groups: ValidConfig['groups'] = {};
    let k = 0;
    for (const tenant of r.tenants) {
      groups[tenant] = {};
      for (const g of r.groupNames) {
        const spec = r.groups[k++ % r.groups.length]!;
        const group: GroupInput = { size: spec.size, template: r.templateNames[spec.template % r.templateNames.length]! };
        if (spec.drainTimeout !== undefined) group.drainTimeout = formatDuration(spec.drainTimeout);
        if (spec.maxSurge !== undefined) group.maxSurge = spec.maxSurge;
        if (spec.startupTimeout !== undefined) group.startupTimeout = formatDuration(spec.startupTimeout);
        if (spec.eligible !== undefined) group.expiry = { eligibleAge: formatDuration(spec.eligible), forcedAge: formatDuration(spec.eligible + spec.extra) };
        groups[tenant][g] = group;
      }
    }
    return {
      shard: { healthCheckInterval: formatDuration(r.health), missedHealthThreshold: r.threshold, defaultDrainTimeout: formatDuration(r.drain) },
      templates: Object.fromEntries(r.templateNames.map((t, i) => [t, { image: `${t}:${i}` }])),
      groups,
    };
  });

type Fault = 'negativeSize' | 'fractionalSize' | 'unknownTemplate' | 'badDuration' | 'zeroStartup' | 'unknownField' | 'expiryOrder';
const FAULTS: readonly Fault[] = ['negativeSize', 'fractionalSize', 'unknownTemplate', 'badDuration', 'zeroStartup', 'unknownField', 'expiryOrder'];

/** Breaks one group of `config` in one way; returns the path the parser must report. */
function inject(config: ValidConfig, tenant: string, group: string, fault: Fault): string {
  const g = config.groups[tenant]![group]! as GroupInput & Record<string, unknown>;
  const base = `groups.${tenant}.${group}`;
  switch (fault) {
    case 'negativeSize':
      g.size = -1 - g.size;
      return `${base}.size`;
    case 'fractionalSize':
      g.size += 0.5;
      return `${base}.size`;
    case 'unknownTemplate':
      g.template = 'no-such-template';
      return `${base}.template`;
    case 'badDuration':
      g.drainTimeout = '5 minutes';
      return `${base}.drainTimeout`;
    case 'zeroStartup':
      g.startupTimeout = '0s';
      return `${base}.startupTimeout`;
    case 'unknownField':
      g.replicas = 3;
      return `${base}.replicas`;
    case 'expiryOrder':
      g.expiry = { eligibleAge: '2h', forcedAge: '1h' };
      return `${base}.expiry.forcedAge`;
  }
}

const groupKeys = (config: ValidConfig): Array<[string, string]> => Object.entries(config.groups).flatMap(([t, gs]) => Object.keys(gs).map((g): [string, string] => [t, g]));

describe('parseConfig properties', () => {
  it('never throws, whatever it is given, and names a path and a problem for each issue', () => {
    fc.assert(
      fc.property(fc.anything(), (input) => {
        const result = parseConfig(input);
        if (!result.ok) {
          expect(result.error.issues.length).toBeGreaterThan(0);
          for (const issue of result.error.issues) {
            expect(typeof issue.path).toBe('string');
            expect(issue.message.length).toBeGreaterThan(0);
          }
        }
      }),
      { numRuns: 300 },
    );
  });

  it('never throws when any one value of a valid config is replaced by anything', () => {
    fc.assert(
      fc.property(arbConfig, fc.nat(), fc.anything(), (generated, which, value) => {
        const config = structuredClone(generated);
        const keys = groupKeys(config);
        if (keys.length === 0) return;
        const [t, g] = keys[which % keys.length]!;
        const fields = ['size', 'template', 'drainTimeout', 'maxSurge', 'startupTimeout', 'expiry'];
        (config.groups[t]![g] as unknown as Record<string, unknown>)[fields[which % fields.length]!] = value;
        expect(() => parseConfig(config)).not.toThrow();
      }),
      { numRuns: 300 },
    );
  });

  it('accepts every valid config and keeps its values (durations in milliseconds)', () => {
    fc.assert(
      fc.property(arbConfig, (config) => {
        const result = parseConfig(config);
        if (!result.ok) throw result.error;
        const parsed = result.config;
        expect(parsed.shard.healthCheckInterval).toBe(parseDuration(config.shard.healthCheckInterval as string));
        expect(parsed.shard.defaultDrainTimeout).toBe(parseDuration(config.shard.defaultDrainTimeout as string));
        for (const [t, g] of groupKeys(config)) {
          const input = config.groups[t]![g]!;
          const out = parsed.groups[t]![g]!;
          expect(out.size).toBe(input.size);
          expect(out.template).toBe(input.template);
          expect(out.maxSurge).toBe(input.maxSurge ?? 1);
          expect(out.drainTimeout).toBe(input.drainTimeout === undefined ? undefined : parseDuration(input.drainTimeout));
          if (input.expiry) expect(out.expiry?.forcedAge).toBe(parseDuration(input.expiry.forcedAge));
        }
      }),
      { numRuns: 200 },
    );
  });

  it('reports each injected fault with its path, all of them at once', () => {
    fc.assert(
      fc.property(
        arbConfig.filter((c) => groupKeys(c).length > 0),
        fc.array(fc.tuple(fc.nat(), fc.constantFrom(...FAULTS)), { minLength: 1, maxLength: 4 }),
        (generated, picks) => {
          const config = structuredClone(generated);
          const keys = groupKeys(config);
          const used = new Set<string>();
          const expected: string[] = [];
          for (const [which, fault] of picks) {
            const [t, g] = keys[which % keys.length]!;
            if (used.has(`${t}/${g}`)) continue; // one fault per group, so each has its own path
            used.add(`${t}/${g}`);
            expected.push(inject(config, t, g, fault));
          }
          const result = parseConfig(config);
          expect(result.ok).toBe(false);
          if (result.ok) return;
          const paths = result.error.issues.map((i) => i.path);
          for (const path of expected) expect(paths).toContain(path);
          for (const path of expected) expect(result.error.message).toContain(`${path}: `);
        },
      ),
      { numRuns: 300 },
    );
  });

  it('keeps the config in force when an update is invalid', () => {
    fc.assert(
      fc.property(
        arbConfig.filter((c) => groupKeys(c).length > 0),
        fc.nat(),
        fc.constantFrom(...FAULTS),
        (config, which, fault) => {
          const loader = ConfigLoader.fromObject(config);
          const before = loader.getCurrent();
          const broken = structuredClone(config);
          const [t, g] = groupKeys(broken)[which % groupKeys(broken).length]!;
          inject(broken, t, g, fault);
          const result = loader.update(broken);
          expect(result.ok).toBe(false);
          expect(loader.getCurrent()).toBe(before);
          expect(loader.lastError).not.toBeNull();
        },
      ),
      { numRuns: 100 },
    );
  });
});

describe('durations', () => {
  it('round-trips: formatting then parsing gives the same milliseconds', () => {
    fc.assert(
      fc.property(fc.integer({ min: 0, max: 3650 * DAY }), (n) => {
        expect(parseDuration(formatDuration(n))).toBe(n);
      }),
    );
  });

  it('parses a sum of parts to the sum of their milliseconds', () => {
    const unit = { d: DAY, h: 3_600_000, m: 60_000, s: 1_000, ms: 1 } as const;
    fc.assert(
      fc.property(fc.array(fc.tuple(fc.integer({ min: 0, max: 999 }), fc.constantFrom<keyof typeof unit>('d', 'h', 'm', 's', 'ms')), { minLength: 1, maxLength: 5 }), (parts) => {
        const text = parts.map(([n, u]) => `${n}${u}`).join('');
        expect(parseDuration(text)).toBe(parts.reduce((sum, [n, u]) => sum + n * unit[u], 0));
      }),
    );
  });

  it('never throws on any text, and gives null or a whole number of milliseconds', () => {
    fc.assert(
      fc.property(fc.string(), (text) => {
        const parsed = parseDuration(text);
        if (parsed !== null) {
          expect(Number.isInteger(parsed)).toBe(true);
          expect(parsed).toBeGreaterThanOrEqual(0);
        }
      }),
    );
  });
});

describe('templateHash', () => {
  it('depends on a template’s content, not on the order of its keys', () => {
    fc.assert(
      fc.property(fc.dictionary(name, fc.jsonValue(), { minKeys: 1, maxKeys: 6 }), fc.string({ minLength: 1 }), (template, other) => {
        const reversed = Object.fromEntries(Object.entries(template).reverse());
        expect(templateHash(reversed)).toBe(templateHash(template));
        const [first] = Object.keys(template);
        const changed = { ...template, [first!]: { changed: other } };
        expect(templateHash(changed)).not.toBe(templateHash(template));
      }),
    );
  });
});
