/**
 * The Hetzner Cloud server metadata client against a fake metadata service on loopback: the
 * server id read under the endpoint's path prefix, validated and bounded, timeouts on the clock;
 * and no notice watcher for `metadata: hetzner`.
 */
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import {
  DEFAULT_HETZNER_METADATA_ENDPOINT,
  HETZNER_METADATA_ENDPOINT_ENV,
  HetznerMetadataClient,
  hetznerMetadataEndpoint,
  isHetznerServerId,
} from '../../src/agent/hetzner-metadata.js';
import { noticeWatcherFor } from '../../src/agent/notice-watcher.js';
import { ManualClock } from '../../src/clock/index.js';
import { InvalidRequestError, TimeoutError, UnavailableError } from '../../src/errors/index.js';
import { FakeHetznerMetadata } from './fake-hetzner-metadata.js';
import { TestLogger } from './harness.js';

let md: FakeHetznerMetadata;
let clock: ManualClock;
beforeEach(async () => {
  md = new FakeHetznerMetadata();
  await md.listen();
  clock = new ManualClock();
});
afterEach(() => md.close());

function client(key = '4711', extra: Partial<ConstructorParameters<typeof HetznerMetadataClient>[0]> = {}): HetznerMetadataClient {
  return new HetznerMetadataClient({ endpoint: md.url(key), clock, ...extra });
}

describe('Hetzner server metadata client', () => {
  it('reads the server id with a plain GET of /hetzner/v1/metadata/instance-id under the endpoint\'s path prefix', async () => {
    md.machine('4711', { instanceId: '4711' });
    md.machine('other', { instanceId: '99' });
    expect(await client().instanceId()).toBe('4711');
    // A trailing slash on the endpoint makes no double slash.
    expect(await new HetznerMetadataClient({ endpoint: `${md.url('other')}/`, clock }).instanceId()).toBe('99');
    expect(md.requests).toEqual([
      { method: 'GET', key: '4711', path: '/hetzner/v1/metadata/instance-id' },
      { method: 'GET', key: 'other', path: '/hetzner/v1/metadata/instance-id' },
    ]);
  });

  it('takes the id without the newline around it', async () => {
    md.machine('4711', { instanceId: '  123456789\n' });
    expect(await client().instanceId()).toBe('123456789');
  });

  it('refuses an answer that is not a positive integer server id, naming the path', async () => {
    const m = md.machine('4711', { instanceId: '' });
    for (const body of ['', 'i-0123456789abcdef0', '<html>oops</html>', '0', '-5', '+5', '007', '1.5', '1e3', '12 34', '9223372036854775808', '99999999999999999999']) {
      m.instanceId = body;
      await expect(client().instanceId(), JSON.stringify(body)).rejects.toThrow(
        new InvalidRequestError('reading Hetzner server metadata /hetzner/v1/metadata/instance-id: not a server id (a positive integer)'),
      );
    }
    m.instanceId = '9223372036854775807';
    expect(await client().instanceId()).toBe('9223372036854775807');
  });

  it('takes a 404 as nothing there: no id (retryable), and undefined for any other leaf', async () => {
    md.machine('4711', { instanceId: '4711' });
    const err = await client('not-a-server').instanceId().catch((e: unknown) => e);
    expect(err).toEqual(new UnavailableError('reading Hetzner server metadata /hetzner/v1/metadata/instance-id: not found'));
    expect(err).toBeInstanceOf(UnavailableError);
    expect(await client().get('/hetzner/v1/metadata/region')).toBeUndefined();
    md.machine('4711', { instanceId: '4711', region: 'eu-central' });
    expect(await client().get('/hetzner/v1/metadata/region')).toBe('eu-central');
  });

  it('takes another status as unavailable, and an unreachable service too', async () => {
    md.machine('4711', { instanceId: '4711' });
    md.failWith = 500;
    await expect(client().instanceId()).rejects.toThrow(new UnavailableError('reading Hetzner server metadata /hetzner/v1/metadata/instance-id: HTTP 500'));
    const closed = new HetznerMetadataClient({ endpoint: 'http://127.0.0.1:1', clock });
    const err = await closed.instanceId().catch((e: unknown) => e);
    expect(err).toBeInstanceOf(UnavailableError);
    expect((err as Error).message).toMatch(/^reading Hetzner server metadata \/hetzner\/v1\/metadata\/instance-id: /);
  });

  it('refuses an answer longer than its limit', async () => {
    md.machine('4711', { instanceId: '4711' });
    await expect(client('4711', { maxBytes: 1_000 }).get('/big')).rejects.toThrow(new InvalidRequestError('reading Hetzner server metadata /big: the answer is longer than 1000 bytes'));
    // The default limit (4 KiB) refuses it too.
    await expect(client().get('/big')).rejects.toThrow('reading Hetzner server metadata /big: the answer is longer than 4096 bytes');
  });

  it('gives up on a request after its timeout on the clock, not before', async () => {
    md.machine('4711', { instanceId: '4711' });
    md.hang = true;
    let settled: unknown = 'pending';
    const read = client('4711', { timeoutMs: 2_000 })
      .instanceId()
      .then(
        () => 'answered',
        (err: unknown) => err,
      )
      .then((outcome) => {
        settled = outcome;
        return outcome;
      });
    await clock.advance(1_999);
    expect(settled).toBe('pending');
    await clock.advance(1);
    expect(await read).toEqual(new TimeoutError('reading Hetzner server metadata /hetzner/v1/metadata/instance-id', 2_000));
    expect(await read).toBeInstanceOf(TimeoutError);
  });

  it('takes its endpoint from the agent config, else DROVER_HETZNER_METADATA_ENDPOINT, else the link-local address', () => {
    expect(HETZNER_METADATA_ENDPOINT_ENV).toBe('DROVER_HETZNER_METADATA_ENDPOINT');
    expect(hetznerMetadataEndpoint('http://cfg', { [HETZNER_METADATA_ENDPOINT_ENV]: 'http://env' })).toBe('http://cfg');
    expect(hetznerMetadataEndpoint(undefined, { [HETZNER_METADATA_ENDPOINT_ENV]: ' http://env ' })).toBe('http://env');
    expect(hetznerMetadataEndpoint(undefined, { [HETZNER_METADATA_ENDPOINT_ENV]: '  ' })).toBe(DEFAULT_HETZNER_METADATA_ENDPOINT);
    expect(hetznerMetadataEndpoint(undefined, {})).toBe(DEFAULT_HETZNER_METADATA_ENDPOINT);
    expect(DEFAULT_HETZNER_METADATA_ENDPOINT).toBe('http://169.254.169.254');
  });

  it('knows a server id: a positive decimal integer within int64', () => {
    expect(['1', '42', '123456789', '9223372036854775807'].every(isHetznerServerId)).toBe(true);
    expect(['', '0', '01', '-1', '9223372036854775808', 'abc', '1 '].some(isHetznerServerId)).toBe(false);
  });
});

describe('notices on Hetzner', () => {
  it('has no notice watcher for metadata hetzner, even beside a notice file', () => {
    const deps = { clock, logger: new TestLogger() };
    expect(noticeWatcherFor({ metadata: 'hetzner' }, deps)).toBeUndefined();
    expect(noticeWatcherFor({ metadata: 'hetzner', noticeFile: '/tmp/notice.json' }, deps)).toBeUndefined();
    // The same notice file with metadata "file" is watched: the undefined above is hetzner's doing.
    expect(noticeWatcherFor({ metadata: 'file', noticeFile: '/tmp/notice.json' }, deps)).toBeDefined();
    expect(clock.pendingTimers()).toBe(0);
  });
});
