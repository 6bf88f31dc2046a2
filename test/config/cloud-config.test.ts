/** Cloud providers in the config (`aws`, `hetzner`): their settings, and templates checked as launch settings at load. */
import { describe, expect, it } from 'vitest';
import { parseConfig } from '../../src/config/index.js';

const groups = { default: { web: { size: 2, template: 'web' } } };
const web = { imageId: 'ami-0123456789abcdef0', instanceTypes: ['m7i.large', 'm6i.large'], capacity: 'spot-then-on-demand', subnetIds: ['subnet-0a1b2c3d'], securityGroupIds: ['sg-1'], iamInstanceProfile: 'drover-agent' };

function issues(input: unknown): Record<string, string> {
  const result = parseConfig(input);
  if (result.ok) throw new Error('expected an invalid config');
  return Object.fromEntries(result.error.issues.map((i) => [i.path, i.message]));
}

describe('the aws provider config', () => {
  it('accepts the documented shape and fills the defaults', () => {
    const result = parseConfig({ provider: { kind: 'aws', region: 'eu-central-1' }, templates: { web }, groups });
    expect(result.ok).toBe(true);
    if (!result.ok) return;
    expect(result.config.provider).toMatchObject({ kind: 'aws', region: 'eu-central-1', notFoundGrace: 120_000, sdkMaxAttempts: 3, adaptiveRate: true });
  });

  it('names each wrong template field with its path, and a bad region', () => {
    const found = issues({
      provider: { kind: 'aws', region: 'Frankfurt' },
      templates: { web: { ...web, imageId: 'ubuntu', instanceTypes: [], capacity: 'cheap', colour: 'red', tags: { 'aws:x': '1' } } },
      groups,
    });
    expect(found['provider.region']).toMatch(/AWS region/);
    expect(found['templates.web.imageId']).toMatch(/AMI id/);
    expect(found['templates.web.instanceTypes']).toMatch(/at least one/);
    expect(found['templates.web.capacity']).toMatch(/on-demand, spot, spot-then-on-demand/);
    expect(found['templates.web.colour']).toBeDefined();
    expect(found['templates.web.tags.aws:x']).toMatch(/reserved by AWS/);
  });

  it('needs an AMI and instance types unless a launch template gives them', () => {
    const found = issues({ provider: { kind: 'aws' }, templates: { web: { subnetIds: ['subnet-1'] } }, groups });
    expect(found['templates.web.imageId']).toMatch(/is required/);
    expect(found['templates.web.instanceTypes']).toMatch(/is required/);
    expect(parseConfig({ provider: { kind: 'aws' }, templates: { web: { launchTemplate: { name: 'web', version: '$Latest' } } }, groups }).ok).toBe(true);
  });

  it('leaves templates free-form for the other providers', () => {
    expect(parseConfig({ provider: { kind: 'local' }, templates: { web: { command: ['sleep', '60'], imageId: 'anything' } }, groups }).ok).toBe(true);
  });
});

describe('the hetzner provider config', () => {
  const hz = { image: 'ubuntu-24.04', serverTypes: ['cx32', 'cpx31'], locations: ['fsn1', 'nbg1', 'hel1'], sshKeys: ['ops'], networks: ['private-net', 4711], firewalls: ['web'] };

  it('accepts the documented shape', () => {
    const result = parseConfig({ provider: { kind: 'hetzner', tokenFile: '/etc/drover/hcloud.token' }, templates: { web: hz }, groups });
    expect(result.ok).toBe(true);
  });

  it('names each wrong template field with its path', () => {
    const found = issues({ provider: { kind: 'hetzner' }, templates: { web: { ...hz, serverTypes: [], locations: ['fsn 1'], colour: 'red' } }, groups });
    expect(found['templates.web.serverTypes']).toMatch(/at least one/);
    expect(found['templates.web.locations[0]']).toMatch(/location name/);
    expect(found['templates.web.colour']).toBe('is not a known field');
  });
});
