/**
 * The instance environment as pure functions: what `instanceEnv` keeps of a given server
 * environment, and what `templateEnv` accepts from a template. (The env test file checks the
 * same allow-list on real processes; this one needs none.)
 */
import { describe, expect, it } from 'vitest';
import { InvalidRequestError, PermanentError } from '../../../src/errors/index.js';
import { templateEnv } from '../../../src/providers/local/environment.js';
import { instanceEnv } from '../../../src/providers/local/index.js';

const server: NodeJS.ProcessEnv = {
  PATH: '/usr/bin',
  HOME: '/home/drover',
  LC_ALL: 'C',
  TZ: 'UTC',
  NODE_OPTIONS: '--require ./hook.js',
  DROVER_AGENT_SECRET: 'server-secret',
  DROVER_TOKEN: 'admin-token',
  DROVER_INSTANCE_ID: 'the-server-own',
  DROVER_AGENT_SOCKET: '/tmp/other.sock',
  AWS_SECRET_ACCESS_KEY: 'cloud-key',
  APP_ONE: '1',
  APP_TWO: '2',
  UNSET: undefined,
};

describe('instanceEnv', () => {
  it('keeps only the allow-listed part of the given environment, and adds the instance id', () => {
    expect(instanceEnv('i-1', undefined, server)).toEqual({ PATH: '/usr/bin', HOME: '/home/drover', LC_ALL: 'C', TZ: 'UTC', DROVER_INSTANCE_ID: 'i-1' });
  });

  it('adds what the template passes (names and PREFIX*), never the server secrets or the reserved names', () => {
    const env = instanceEnv('i-1', { passEnv: ['APP_*', 'AWS_SECRET_ACCESS_KEY', 'UNSET'], env: {} }, server);
    expect(env).toMatchObject({ APP_ONE: '1', APP_TWO: '2', AWS_SECRET_ACCESS_KEY: 'cloud-key', DROVER_INSTANCE_ID: 'i-1' });
    expect(env).not.toHaveProperty('UNSET');
    expect(env).not.toHaveProperty('DROVER_AGENT_SOCKET');
    expect(instanceEnv('i-1', { passEnv: ['DROVER_*'], env: {} }, server)).not.toHaveProperty('DROVER_AGENT_SECRET');
  });

  it('lets the template’s values win over inherited ones, and the instance id over both', () => {
    const env = instanceEnv('i-1', { passEnv: [], env: { TZ: 'Europe/Paris', DROVER_TOKEN: 'the-template-own' } }, server);
    expect(env.TZ).toBe('Europe/Paris');
    expect(env.DROVER_TOKEN).toBe('the-template-own');
    expect(instanceEnv('i-1', { passEnv: [], env: { DROVER_INSTANCE_ID: 'i-other' } }, server).DROVER_INSTANCE_ID).toBe('i-1');
  });
});

describe('templateEnv', () => {
  it('reads passEnv and env, writing numbers and booleans as text; a template without them adds nothing', () => {
    expect(templateEnv({ passEnv: ['A', 'B_*'], env: { PORT: 8080, DEBUG: false, NAME: 'x' } }, 'i-1')).toEqual({ passEnv: ['A', 'B_*'], env: { PORT: '8080', DEBUG: 'false', NAME: 'x' } });
    expect(templateEnv({}, 'i-1')).toEqual({ passEnv: [], env: {} });
  });

  it('refuses a bad field with a PermanentError naming the instance and the field', () => {
    const cases: Array<[Record<string, unknown>, string]> = [
      [{ passEnv: ['DROVER_AGENT_SOCKET'] }, 'template field passEnv[0]: DROVER_AGENT_SOCKET is set by Drover for every instance'],
      [{ passEnv: [3] }, 'template field passEnv[0]: 3 is not a variable name'],
      [{ env: { N: Number.POSITIVE_INFINITY } }, 'template field env.N: must be a string, number or boolean, got number'],
      [{ env: { L: ['a'] } }, 'template field env.L: must be a string, number or boolean, got a list'],
      [{ env: null }, 'template field env: must be a mapping of variable names to values'],
    ];
    for (const [template, message] of cases) {
      let caught: unknown;
      try {
        templateEnv(template, 'i-9');
      } catch (err) {
        caught = err;
      }
      expect(caught, JSON.stringify(template)).toBeInstanceOf(PermanentError);
      expect((caught as PermanentError).unwrap()).toBeInstanceOf(InvalidRequestError);
      expect((caught as Error).message).toContain(`creating instance i-9: ${message}`);
    }
  });
});
