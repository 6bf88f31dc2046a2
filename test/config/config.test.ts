import { describe, expect, it } from 'vitest';
import {
  NO_DISRUPTION_LIMITS,
  ConfigError,
  configuredGroups,
  formatPath,
  groupSettings,
  parseConfig,
  templateHash,
  type ConfigIssue,
  type DroverConfig,
} from '../../src/config/config.js';
import { DroverError, isRetryable } from '../../src/errors/index.js';

/** Parses a config that must be valid. */
function valid(input: unknown): DroverConfig {
  const result = parseConfig(input);
  if (!result.ok) throw new Error(`expected a valid config, got: ${result.error.message}`);
  return result.config;
}

/** Parses a config that must be invalid and returns its issues. */
function issuesOf(input: unknown): readonly ConfigIssue[] {
  const result = parseConfig(input);
  if (result.ok) throw new Error('expected an invalid config');
  return result.error.issues;
}

function messageAt(issues: readonly ConfigIssue[], path: string): string | undefined {
  return issues.find((i) => i.path === path)?.message;
}

const web = { image: 'web:1', cpu: 2 };

describe('parseConfig', () => {
  it('refuses an empty document: a truncated file must not empty the fleet', () => {
    for (const empty of [undefined, null]) {
      expect(issuesOf(empty)).toEqual([{ path: '', message: 'the config is empty (an empty file, "---" or null); the config in force stays' }]);
    }
    expect(issuesOf('groups')[0]?.message).toMatch(/must be a mapping of sections/);
    expect(issuesOf([])[0]?.message).toMatch(/not a list/);
  });

  it('refuses a config without groups unless it says allowEmpty', () => {
    expect(issuesOf({})).toEqual([{ path: 'groups', message: 'lists no group: a config without groups would drain every instance (say allowEmpty: true if that is meant)' }]);
    expect(issuesOf({ templates: { web }, groups: { default: {} } }).map((i) => i.path)).toEqual(['groups']);
    expect(valid({ allowEmpty: true }).groups).toEqual({});
  });

  it('keeps refusing a misspelt groups section as an unknown field', () => {
    expect(issuesOf({ templates: { web }, gruops: { default: { web: { size: 1, template: 'web' } } } })).toContainEqual({ path: 'gruops', message: 'is not a known field' });
  });

  it('gives agent bootstrap tokens 30 minutes by default, and takes from 1m to 24h', () => {
    expect(valid({ allowEmpty: true }).server.agentBootstrapTokenTtl).toBe(30 * 60_000);
    expect(valid({ allowEmpty: true, server: { agentBootstrapTokenTtl: '2h' } }).server.agentBootstrapTokenTtl).toBe(2 * 3_600_000);
    for (const ttl of ['30s', '25h']) {
      expect(issuesOf({ allowEmpty: true, server: { agentBootstrapTokenTtl: ttl } }), ttl).toEqual([{ path: 'server.agentBootstrapTokenTtl', message: 'must be from 1m to 24h' }]);
    }
  });

  it('caps every duration at a year', () => {
    expect(issuesOf({ allowEmpty: true, shard: { defaultDrainTimeout: '400d' } })).toEqual([{ path: 'shard.defaultDrainTimeout', message: 'must be at most a year (366d) (got "400d")' }]);
    expect(valid({ allowEmpty: true, shard: { defaultDrainTimeout: '366d' } }).shard.defaultDrainTimeout).toBe(366 * 86_400_000);
  });

  it('refuses a token shorter than 16 characters and a named token given twice over', () => {
    expect(issuesOf({ allowEmpty: true, server: { token: 'short' } }).map((i) => i.path)).toEqual(['server.token']);
    const both = issuesOf({ allowEmpty: true, server: { tokens: [{ name: 'ops', role: 'admin', env: 'A', file: '/x' }] } });
    expect(both).toEqual([{ path: 'server.tokens[0]', message: 'give exactly one of sha256, file and env' }]);
    const parsed = valid({ allowEmpty: true, server: { tokens: [{ name: 'ops', role: 'admin', sha256: 'AB'.repeat(32) }] } });
    expect(parsed.server.tokens[0]?.sha256).toBe('ab'.repeat(32));
  });

  it('reads groups, templates and durations', () => {
    const config = valid({
      shard: { healthCheckInterval: '30s', startupTimeout: '10m', expiry: { eligibleAge: '14d', forcedAge: '21d' } },
      templates: { web },
      groups: { default: { web: { size: 3, template: 'web', drainTimeout: '1h30m' } } },
    });
    expect(config.shard.healthCheckInterval).toBe(30_000);
    expect(config.shard.startupTimeout).toBe(600_000);
    expect(config.shard.expiry).toEqual({ eligibleAge: 14 * 86_400_000, forcedAge: 21 * 86_400_000 });
    expect(config.groups.default?.web).toMatchObject({ size: 3, template: 'web', drainTimeout: 5_400_000 });
    expect(config.templates.web).toEqual(web);
  });

  it('reports a problem with its path in config terms', () => {
    const result = parseConfig({ templates: { web }, groups: { default: { web: { size: -1, template: 'web' } } } });
    expect(result.ok).toBe(false);
    if (result.ok) return;
    expect(result.error).toBeInstanceOf(ConfigError);
    expect(result.error.issues).toEqual([{ path: 'groups.default.web.size', message: 'must be >= 0' }]);
    expect(result.error.message).toContain('groups.default.web.size: must be >= 0');
  });

  it('reports every problem at once, not only the first', () => {
    const issues = issuesOf({
      shard: { healthCheckInterval: '5 minutes', workers: 0, expiry: { eligibleAge: '21d', forcedAge: '14d' } },
      templates: { web },
      groups: {
        default: {
          web: { size: -1, template: 'web', colour: 'blue' },
          api: { size: 2, template: 'missing' },
          batch: { size: 1, template: 'web', maxSurge: -2 },
        },
      },
      server: { listen: 'nowhere' },
    });
    const paths = issues.map((i) => i.path);
    expect(paths).toEqual(
      expect.arrayContaining([
        'shard.healthCheckInterval',
        'shard.workers',
        'groups.default.web.size',
        'groups.default.web.colour',
        'groups.default.batch.maxSurge',
        'server.listen',
      ]),
    );
    expect(messageAt(issues, 'groups.default.web.size')).toBe('must be >= 0');
    expect(messageAt(issues, 'shard.workers')).toBe('must be >= 1');
    expect(messageAt(issues, 'groups.default.batch.maxSurge')).toBe('must be >= 0');
    expect(messageAt(issues, 'groups.default.web.colour')).toBe('is not a known field');
    expect(messageAt(issues, 'shard.healthCheckInterval')).toMatch(/must be a duration.*"5 minutes"/);
    expect(messageAt(issues, 'server.listen')).toMatch(/host:port/);
  });

  it('reports cross-field problems together with field problems', () => {
    const issues = issuesOf({
      shard: { expiry: { eligibleAge: '21d', forcedAge: '14d' } },
      templates: { web },
      groups: { default: { web: { size: -1, template: 'web' }, api: { size: 1, template: 'missing' } } },
    });
    expect(messageAt(issues, 'groups.default.web.size')).toBe('must be >= 0');
    expect(messageAt(issues, 'shard.expiry.forcedAge')).toBe('must be longer than eligibleAge');
    expect(messageAt(issues, 'groups.default.api.template')).toMatch(/"missing".*not defined under templates/);
  });

  it('puts every problem in the error message, each with its path', () => {
    const result = parseConfig({ templates: { web }, groups: { default: { web: { size: -1, template: 'web', extra: true } } } }, 'drover.yaml');
    expect(result.ok).toBe(false);
    if (result.ok) return;
    expect(result.error.message).toMatch(/^invalid drover\.yaml: /);
    expect(result.error.message).toContain('groups.default.web.size: must be >= 0');
    expect(result.error.message).toContain('groups.default.web.extra: is not a known field');
  });

  it('names each unknown field, at every level', () => {
    const issues = issuesOf({ allowEmpty: true, colour: 1, shard: { speed: 'fast' }, provider: { kind: 'sim', flavour: 'x', zone: 'y' } });
    expect(issues).toEqual(
      expect.arrayContaining([
        { path: 'colour', message: 'is not a known field' },
        { path: 'shard.speed', message: 'is not a known field' },
        { path: 'provider.flavour', message: 'is not a known field' },
        { path: 'provider.zone', message: 'is not a known field' },
      ]),
    );
    expect(issues).toHaveLength(4);
  });

  it('rejects a group that names a template that is not defined', () => {
    const issues = issuesOf({ templates: { web }, groups: { acme: { api: { size: 1, template: 'api' } } } });
    expect(issues).toHaveLength(1);
    expect(issues[0]?.path).toBe('groups.acme.api.template');
    expect(issues[0]?.message).toContain('"api"');
  });

  it('does not mistake built-in object properties for defined templates', () => {
    for (const name of ['constructor', 'toString', 'hasOwnProperty', '__proto__']) {
      const issues = issuesOf({ templates: { web }, groups: { default: { web: { size: 1, template: name } } } });
      expect(messageAt(issues, 'groups.default.web.template')).toContain(`"${name}"`);
    }
  });

  it('says a missing required field is required', () => {
    const issues = issuesOf({ templates: { web }, groups: { default: { web: { template: 'web' } } } });
    expect(issues).toEqual([{ path: 'groups.default.web.size', message: 'is required' }]);
  });

  it('does not call a present value of the wrong type "required"', () => {
    const issues = issuesOf({
      templates: { web },
      groups: { default: { web: { size: 1.5, template: 'web' }, api: { size: 'three', template: 7 } } },
      shard: { healthCheckInterval: true },
    });
    expect(messageAt(issues, 'groups.default.web.size')).toBe('must be a whole number');
    expect(messageAt(issues, 'groups.default.api.size')).toBe('must be a whole number');
    expect(messageAt(issues, 'groups.default.api.template')).toBe('must name a template');
    expect(messageAt(issues, 'shard.healthCheckInterval')).toMatch(/must be a duration/);
    expect(issues.map((i) => i.message)).not.toContain('is required');
  });

  it('rejects eligibleAge >= forcedAge in the shard expiry', () => {
    expect(messageAt(issuesOf({ shard: { expiry: { eligibleAge: '21d', forcedAge: '21d' } } }), 'shard.expiry.forcedAge')).toBe(
      'must be longer than eligibleAge',
    );
    expect(messageAt(issuesOf({ shard: { expiry: { eligibleAge: '22d', forcedAge: '21d' } } }), 'shard.expiry.forcedAge')).toBe(
      'must be longer than eligibleAge',
    );
    expect(valid({ allowEmpty: true, shard: { expiry: { eligibleAge: '20d', forcedAge: '21d' } } }).shard.expiry.forcedAge).toBe(21 * 86_400_000);
  });

  it('allows either expiry age alone (0 means off)', () => {
    expect(valid({ allowEmpty: true, shard: { expiry: { eligibleAge: '21d' } } }).shard.expiry).toEqual({ eligibleAge: 21 * 86_400_000, forcedAge: 0 });
    expect(valid({ allowEmpty: true, shard: { expiry: { forcedAge: '1d' } } }).shard.expiry).toEqual({ eligibleAge: 0, forcedAge: 86_400_000 });
  });

  it("rejects a group's expiry whose eligibleAge, with shard defaults filled in, is not before forcedAge", () => {
    const issues = issuesOf({
      shard: { expiry: { eligibleAge: '1d', forcedAge: '10d' } },
      templates: { web },
      groups: { default: { web: { size: 1, template: 'web', expiry: { eligibleAge: '12d' } } } },
    });
    expect(issues).toEqual([{ path: 'groups.default.web.expiry.forcedAge', message: 'must be longer than eligibleAge' }]);
  });

  it('reports a bad duration string with the value that was given', () => {
    const issues = issuesOf({ shard: { startupTimeout: '10 mins', defaultDrainTimeout: '-5s' } });
    expect(messageAt(issues, 'shard.startupTimeout')).toContain('"10 mins"');
    expect(messageAt(issues, 'shard.defaultDrainTimeout')).toContain('"-5s"');
  });

  it('rejects a zero duration where a positive one is needed', () => {
    expect(messageAt(issuesOf({ shard: { healthCheckInterval: '0s' } }), 'shard.healthCheckInterval')).toBe('must be longer than 0s');
    expect(valid({ allowEmpty: true, shard: { defaultDrainTimeout: '0s' } }).shard.defaultDrainTimeout).toBe(0);
  });

  it('rejects bad tenant, group and template names, saying what a name may contain', () => {
    const issues = issuesOf({
      templates: { web, 'bad template!': {} },
      groups: { 'bad tenant': { web: { size: 1, template: 'web' } }, default: { '-web': { size: 1, template: 'web' } } },
    });
    expect(messageAt(issues, 'groups.bad tenant')).toMatch(/^tenant must be 1-63 letters/);
    expect(messageAt(issues, 'groups.default.-web')).toMatch(/^group must be 1-63 letters/);
    expect(messageAt(issues, 'templates.bad template!')).toMatch(/^template must be 1-63 letters/);
  });

  it('rejects a name longer than 63 characters and accepts one of exactly 63', () => {
    const long = `t${'x'.repeat(63)}`;
    const ok = `t${'x'.repeat(62)}`;
    expect(issuesOf({ templates: { web }, groups: { [long]: { web: { size: 1, template: 'web' } } } })[0]?.path).toBe(`groups.${long}`);
    expect(Object.keys(valid({ templates: { web }, groups: { [ok]: { web: { size: 1, template: 'web' } } } }).groups)).toEqual([ok]);
  });

  it('requires etcd endpoints when the leader kind is etcd', () => {
    expect(issuesOf({ allowEmpty: true, leader: { kind: 'etcd' } })).toEqual([
      { path: 'leader.endpoints', message: 'must list at least one etcd endpoint when kind is "etcd"' },
    ]);
    expect(valid({ allowEmpty: true, leader: { kind: 'etcd', endpoints: ['http://etcd:2379'] } }).leader?.endpoints).toEqual(['http://etcd:2379']);
  });

  it('gives the error the config code and marks it not retryable', () => {
    const result = parseConfig({ shard: { workers: 0 } });
    expect(result.ok).toBe(false);
    if (result.ok) return;
    expect(result.error).toBeInstanceOf(DroverError);
    expect(result.error.code).toBe('config');
    expect(isRetryable(result.error)).toBe(false);
  });
});

describe('parseConfig defaults', () => {
  it('fills in every shard default', () => {
    expect(valid({ allowEmpty: true }).shard).toEqual({
      id: 'local',
      healthCheckInterval: 60_000,
      missedHealthThreshold: 3,
      startupTimeout: 300_000,
      defaultDrainTimeout: 300_000,
      createRateLimit: 0,
      expiry: { eligibleAge: 0, forcedAge: 0 },
      defaultNoticeWindow: 120_000,
      workers: 16,
      resyncInterval: 600_000,
      maxAttempts: 8,
      groupRemovalGrace: 120_000,
    });
  });

  it('fills in the defaults a partial shard leaves out', () => {
    const shard = valid({ allowEmpty: true, shard: { workers: 4, expiry: { forcedAge: '30d' } } }).shard;
    expect(shard.workers).toBe(4);
    expect(shard.healthCheckInterval).toBe(60_000);
    expect(shard.expiry).toEqual({ eligibleAge: 0, forcedAge: 30 * 86_400_000 });
  });

  it('defaults templates to empty and fills in every section left out', () => {
    const config = valid({ allowEmpty: true });
    expect(config.groups).toEqual({});
    expect(config.templates).toEqual({});
    expect(config.server).toMatchObject({ listen: '127.0.0.1:7400', dataDir: './.drover', replicas: [], tokens: [], metricsToken: false, insecureNoAuth: false, requestTimeout: 30_000 });
    expect(config.provider).toMatchObject({ kind: 'local', maxConcurrentCalls: 64, callTimeout: 60_000 });
    expect(config.leader).toEqual({ kind: 'single', endpoints: [], ttl: 5_000 });
    expect(config.store).toEqual({ retention: 30 * 86_400_000 });
  });

  it('defaults a group maxSurge to 1, min to 0, max to the largest size and schedules to none, and leaves per-group overrides unset', () => {
    const group = valid({ templates: { web }, groups: { default: { web: { size: 2, template: 'web' } } } }).groups.default?.web;
    expect(group).toEqual({ size: 2, template: 'web', maxSurge: 1, min: 0, max: 100_000, schedules: [] });
  });

  it('fills in defaults inside optional sections that are present', () => {
    const config = valid({ allowEmpty: true, server: {}, provider: { kind: 'sim' }, leader: {} });
    expect(config.server).toMatchObject({ listen: '127.0.0.1:7400', dataDir: './.drover', replicas: [] });
    expect(config.provider).toMatchObject({ kind: 'sim', maxCallsPerSecond: 0, maxConcurrentCalls: 64, callTimeout: 60_000, createLatency: 0 });
    expect(config.leader).toEqual({ kind: 'single', endpoints: [], ttl: 5_000 });
  });

  it('does not share default objects between parses', () => {
    const a = valid({ allowEmpty: true });
    a.shard.expiry.eligibleAge = 123;
    expect(valid({ allowEmpty: true }).shard.expiry.eligibleAge).toBe(0);
  });
});

describe('templateHash', () => {
  it('is the same whatever the key order, at every depth', () => {
    const a = { image: 'web:1', cpu: 2, disks: [{ size: 10, kind: 'ssd' }], net: { vpc: 'a', subnet: 'b' } };
    const b = { net: { subnet: 'b', vpc: 'a' }, disks: [{ kind: 'ssd', size: 10 }], cpu: 2, image: 'web:1' };
    expect(templateHash(a)).toBe(templateHash(b));
  });

  it('changes when any value changes, at any depth', () => {
    const base = { image: 'web:1', cpu: 2, net: { vpc: 'a' }, disks: [10, 20] };
    const h = templateHash(base);
    expect(templateHash({ ...base, image: 'web:2' })).not.toBe(h);
    expect(templateHash({ ...base, cpu: 3 })).not.toBe(h);
    expect(templateHash({ ...base, cpu: '2' })).not.toBe(h);
    expect(templateHash({ ...base, net: { vpc: 'b' } })).not.toBe(h);
    expect(templateHash({ ...base, disks: [20, 10] })).not.toBe(h);
    expect(templateHash({ ...base, extra: true })).not.toBe(h);
  });

  it('changes when a key is renamed but the value is kept', () => {
    expect(templateHash({ a: 1 })).not.toBe(templateHash({ b: 1 }));
  });

  it('is a short hex string, stable across calls', () => {
    const h = templateHash(web);
    expect(h).toMatch(/^[0-9a-f]{16}$/);
    expect(templateHash({ ...web })).toBe(h);
  });

  it('treats a key holding undefined as absent', () => {
    expect(templateHash({ image: 'x', note: undefined })).toBe(templateHash({ image: 'x' }));
  });
});

describe('launch hooks', () => {
  const withHook = (launch: unknown): unknown => ({ templates: { web }, groups: { default: { web: { size: 1, template: 'web', hooks: { launch } } } } });

  it('defaults a launch hook to a 10 minute timeout that abandons the instance', () => {
    expect(groupSettings(valid(withHook({})), 'default', 'web')?.launchHook).toEqual({ timeoutMs: 600_000, onTimeout: 'abandon' });
    expect(groupSettings(valid(withHook({ timeout: '30m', onTimeout: 'continue' })), 'default', 'web')?.launchHook).toEqual({ timeoutMs: 1_800_000, onTimeout: 'continue' });
  });

  it('refuses a launch hook timeout outside 10s to 24h, or an onTimeout it does not know, naming the field', () => {
    expect(messageAt(issuesOf(withHook({ timeout: '5s' })), 'groups.default.web.hooks.launch.timeout')).toBe('must be from 10s to 24h');
    expect(messageAt(issuesOf(withHook({ timeout: '25h' })), 'groups.default.web.hooks.launch.timeout')).toBe('must be from 10s to 24h');
    expect(messageAt(issuesOf(withHook({ onTimeout: 'retry' })), 'groups.default.web.hooks.launch.onTimeout')).toBe('must be "continue" or "abandon"');
    expect(issuesOf({ templates: { web }, groups: { default: { web: { size: 1, template: 'web', hooks: { terminate: {} } } } } }).map((i) => i.path)).toEqual([expect.stringMatching(/^groups.default.web.hooks/)]);
  });
});

describe('groupSettings', () => {
  const config = valid({
    shard: { defaultDrainTimeout: '10m', startupTimeout: '4m', expiry: { eligibleAge: '14d', forcedAge: '21d' } },
    templates: { web, api: { image: 'api:3' } },
    groups: {
      default: {
        web: { size: 3, template: 'web' },
        api: { size: 5, template: 'api', drainTimeout: '30s', maxSurge: 2, startupTimeout: '1m', expiry: { forcedAge: '30d' } },
      },
      acme: { web: { size: 1, template: 'web', expiry: { eligibleAge: '7d', forcedAge: '8d' } } },
    },
  });

  it('applies shard defaults to a group that sets nothing of its own', () => {
    expect(groupSettings(config, 'default', 'web')).toEqual({
      tenant: 'default',
      group: 'web',
      size: 3,
      templateName: 'web',
      template: web,
      templateHash: templateHash(web),
      drainTimeoutMs: 600_000,
      maxSurge: 1,
      startupTimeoutMs: 240_000,
      eligibleAgeMs: 14 * 86_400_000,
      forcedAgeMs: 21 * 86_400_000,
      disruption: NO_DISRUPTION_LIMITS,
      launchHook: null,
    });
  });

  it("lets a group's own settings override the shard defaults, field by field", () => {
    const settings = groupSettings(config, 'default', 'api');
    expect(settings).toMatchObject({
      size: 5,
      templateName: 'api',
      template: { image: 'api:3' },
      drainTimeoutMs: 30_000,
      maxSurge: 2,
      startupTimeoutMs: 60_000,
      // eligibleAge not set on the group: the shard's applies.
      eligibleAgeMs: 14 * 86_400_000,
      forcedAgeMs: 30 * 86_400_000,
    });
    expect(groupSettings(config, 'acme', 'web')).toMatchObject({ eligibleAgeMs: 7 * 86_400_000, forcedAgeMs: 8 * 86_400_000 });
  });

  it('hashes the template the group uses', () => {
    expect(groupSettings(config, 'default', 'api')?.templateHash).toBe(templateHash({ image: 'api:3' }));
    expect(groupSettings(config, 'default', 'api')?.templateHash).not.toBe(groupSettings(config, 'default', 'web')?.templateHash);
  });

  it('returns null for a tenant or group that is not configured', () => {
    expect(groupSettings(config, 'default', 'nope')).toBeNull();
    expect(groupSettings(config, 'nobody', 'web')).toBeNull();
  });

  it('returns null for group and tenant names that are built-in object properties', () => {
    for (const name of ['constructor', 'toString', 'hasOwnProperty', 'valueOf', '__proto__']) {
      expect(groupSettings(config, 'default', name)).toBeNull();
      expect(groupSettings(config, name, 'web')).toBeNull();
    }
  });
});

describe('configuredGroups', () => {
  it('lists every (tenant, group) pair', () => {
    const config = valid({
      templates: { web },
      groups: { default: { web: { size: 1, template: 'web' }, api: { size: 1, template: 'web' } }, acme: { web: { size: 0, template: 'web' } } },
    });
    expect(configuredGroups(config)).toEqual(
      expect.arrayContaining([
        { tenant: 'default', group: 'web' },
        { tenant: 'default', group: 'api' },
        { tenant: 'acme', group: 'web' },
      ]),
    );
    expect(configuredGroups(config)).toHaveLength(3);
    expect(configuredGroups(valid({ allowEmpty: true }))).toEqual([]);
  });
});

describe('formatPath', () => {
  it('joins keys with dots and writes indexes in brackets', () => {
    expect(formatPath(['groups', 'default', 'web', 'budgets', 1, 'schedule'])).toBe('groups.default.web.budgets[1].schedule');
    expect(formatPath([])).toBe('');
    expect(formatPath([0, 'a'])).toBe('[0].a');
  });
});

describe('ConfigError', () => {
  it('lists every issue in its message and keeps them', () => {
    const issues = [
      { path: 'a.b', message: 'is wrong' },
      { path: '', message: 'the whole thing is wrong' },
    ];
    const error = new ConfigError(issues, 'x.yaml');
    expect(error.message).toBe('invalid x.yaml: a.b: is wrong; the whole thing is wrong');
    expect(error.issues).toEqual(issues);
  });
});
