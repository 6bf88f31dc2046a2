/**
 * The IMDSv2 client against a fake metadata service on loopback: sessions, renewals, answers
 * validated and bounded, timeouts on the clock; and the EC2 notice watcher over it.
 */
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { DEFAULT_IMDS_ENDPOINT, IMDS_ENDPOINT_ENV, ImdsClient, imdsEndpoint } from '../../src/agent/imds.js';
import { NoticeSender, noticeWatcherFor } from '../../src/agent/notice-watcher.js';
import { ManualClock } from '../../src/clock/index.js';
import { InvalidRequestError, TimeoutError, UnavailableError } from '../../src/errors/index.js';
import { FakeLink } from './fakes.js';
import { FakeImds } from './fake-imds.js';
import { TestLogger } from './harness.js';

let imds: FakeImds;
let clock: ManualClock;
beforeEach(async () => {
  imds = new FakeImds();
  await imds.listen();
  clock = new ManualClock();
});
afterEach(() => imds.close());

function client(key = 'm1', extra: Partial<ConstructorParameters<typeof ImdsClient>[0]> = {}): ImdsClient {
  return new ImdsClient({ endpoint: imds.url(key), clock, ...extra });
}

describe('IMDSv2 client', () => {
  it('opens a session with a 6-hour token, reads with it under the endpoint\'s path prefix, and keeps using it', async () => {
    imds.machine('m1', { instanceId: 'i-0123456789abcdef0' });
    const c = client();
    expect(await c.instanceId()).toBe('i-0123456789abcdef0');
    expect(await c.instanceId()).toBe('i-0123456789abcdef0');
    expect(imds.requests).toEqual([
      { method: 'PUT', path: '/latest/api/token', ttl: '21600', tokenValid: false },
      { method: 'GET', path: '/latest/meta-data/instance-id', ttl: undefined, tokenValid: true },
      { method: 'GET', path: '/latest/meta-data/instance-id', ttl: undefined, tokenValid: true },
    ]);
  });

  it('renews its token before it runs out', async () => {
    imds.machine('m1', { instanceId: 'i-1' });
    const c = client('m1', { tokenTtlSeconds: 600 });
    await c.instanceId();
    // A tenth of 600 s (60 s) before the end: still the same token just before, a new one at it.
    await clock.advance(540_000 - 1);
    await c.instanceId();
    expect(imds.tokenRequests).toBe(1);
    await clock.advance(1);
    await c.instanceId();
    expect(imds.tokenRequests).toBe(2);
    expect(imds.requests.filter((r) => r.method === 'GET').every((r) => r.tokenValid)).toBe(true);
  });

  it('gets a new token when a read is answered 401, and reads again', async () => {
    imds.machine('m1', { instanceId: 'i-1' });
    const c = client();
    await c.instanceId();
    imds.expireTokens();
    expect(await c.instanceId()).toBe('i-1');
    expect(imds.requests.map((r) => `${r.method} ${r.tokenValid}`)).toEqual(['PUT false', 'GET true', 'GET false', 'PUT false', 'GET true']);
  });

  it('reads a spot interruption notice and a rebalance recommendation, and a 404 as none', async () => {
    const m = imds.machine('m1', { instanceId: 'i-1' });
    const c = client();
    expect(await c.spotInstanceAction()).toBeUndefined();
    expect(await c.rebalanceRecommendation()).toBeUndefined();
    m.spotAction = JSON.stringify({ action: 'terminate', time: '2026-01-01T00:02:00Z' });
    m.rebalance = JSON.stringify({ noticeTime: '2026-01-01T00:00:30Z' });
    expect(await c.spotInstanceAction()).toEqual({ action: 'terminate', time: new Date('2026-01-01T00:02:00Z') });
    expect(await c.rebalanceRecommendation()).toEqual(new Date('2026-01-01T00:00:30Z'));
    m.spotAction = JSON.stringify({ action: 'hibernate', time: '2026-01-01T00:03:00Z' });
    expect((await c.spotInstanceAction())?.action).toBe('hibernate');
  });

  it('refuses answers that do not validate, naming the path', async () => {
    const m = imds.machine('m1', { instanceId: '<html>oops</html>' });
    const c = client();
    await expect(c.instanceId()).rejects.toThrow(new InvalidRequestError('reading instance metadata /latest/meta-data/instance-id: not an instance id'));
    for (const body of ['not json', '{"action":"explode","time":"2026-01-01T00:02:00Z"}', '{"action":"terminate","time":"soon"}', '[]']) {
      m.spotAction = body;
      await expect(c.spotInstanceAction(), body).rejects.toThrow(/^reading instance metadata \/latest\/meta-data\/spot\/instance-action: /);
    }
    m.rebalance = '{"noticeTime":42}';
    await expect(c.rebalanceRecommendation()).rejects.toBeInstanceOf(InvalidRequestError);
  });

  it('refuses an answer longer than its limit', async () => {
    imds.machine('m1', { instanceId: 'i-1' });
    await expect(client('m1', { maxBytes: 1_000 }).get('/big')).rejects.toThrow('reading instance metadata /big: the answer is longer than 1000 bytes');
  });

  it('takes another status as an error, and an unreachable service as unavailable', async () => {
    imds.machine('m1', { instanceId: 'i-1' });
    imds.failWith = 500;
    await expect(client().instanceId()).rejects.toThrow(new UnavailableError('reading instance metadata /latest/meta-data/instance-id: HTTP 500'));
    const closed = new ImdsClient({ endpoint: 'http://127.0.0.1:1', clock });
    await expect(closed.instanceId()).rejects.toBeInstanceOf(UnavailableError);
  });

  it('gives up on a request after its timeout on the clock', async () => {
    imds.machine('m1', { instanceId: 'i-1' });
    imds.hang = true;
    const read = client('m1', { timeoutMs: 2_000 }).instanceId();
    const outcome = read.then(
      () => 'answered',
      (err: unknown) => err,
    );
    await clock.advance(1_999);
    await clock.advance(1);
    expect(await outcome).toEqual(new TimeoutError('getting an instance metadata token at /latest/api/token', 2_000));
  });

  it('takes its endpoint from the agent config, else AWS_EC2_METADATA_SERVICE_ENDPOINT, else the link-local address', () => {
    expect(imdsEndpoint('http://cfg', { [IMDS_ENDPOINT_ENV]: 'http://env' })).toBe('http://cfg');
    expect(imdsEndpoint(undefined, { [IMDS_ENDPOINT_ENV]: 'http://env' })).toBe('http://env');
    expect(imdsEndpoint(undefined, {})).toBe(DEFAULT_IMDS_ENDPOINT);
    expect(DEFAULT_IMDS_ENDPOINT).toBe('http://169.254.169.254');
  });
});

/**
 * Moves the clock `ms` forward a second at a time, each step only once every watcher has finished
 * its read and armed its next poll (`armed` timers pending, none of them a request's timeout):
 * real loopback requests take their own time, which the manual clock does not wait for.
 */
async function advanceWatching(ms: number, armed: number): Promise<void> {
  for (let done = 0; done < ms; done += 1_000) {
    await vi.waitFor(() => expect(clock.pendingTimers()).toBe(armed));
    await clock.advance(Math.min(1_000, ms - done));
  }
  await vi.waitFor(() => expect(clock.pendingTimers()).toBe(armed));
}

describe('EC2 notice watcher', () => {
  it('reports a spot interruption once, within a second of it appearing, and a rebalance recommendation once', async () => {
    const m = imds.machine('m1', { instanceId: 'i-1' });
    const watcher = noticeWatcherFor({ metadata: 'ec2', imds: { endpoint: imds.url('m1') } }, { clock, logger: new TestLogger() });
    const notices: string[] = [];
    const rebalances: string[] = [];
    watcher!.start(
      (at) => notices.push(at.toISOString()),
      (at) => rebalances.push(at.toISOString()),
    );
    await advanceWatching(0, 2);
    m.spotAction = JSON.stringify({ action: 'terminate', time: '2026-01-01T00:02:00Z' });
    m.rebalance = JSON.stringify({ noticeTime: '2026-01-01T00:00:30Z' });
    await advanceWatching(1_000, 2);
    expect(notices).toEqual(['2026-01-01T00:02:00.000Z']);
    expect(rebalances).toEqual([]);
    await advanceWatching(4_000, 2);
    expect(rebalances).toEqual(['2026-01-01T00:00:30.000Z']);
    await advanceWatching(20_000, 2);
    expect(notices).toHaveLength(1);
    expect(rebalances).toHaveLength(1);
    watcher!.stop();
    // About one read of each a poll: 26 s of spot reads, 6 of rebalance (and one token).
    const reads = imds.requests.filter((r) => r.method === 'GET');
    expect(reads.filter((r) => r.path.endsWith('instance-action')).length).toBe(26);
    expect(reads.filter((r) => r.path.endsWith('rebalance')).length).toBe(6);
    expect(imds.tokenRequests).toBe(1);
    expect(clock.pendingTimers()).toBe(0);
  });

  it('keeps polling through failed reads', async () => {
    const m = imds.machine('m1', { instanceId: 'i-1' });
    imds.failWith = 500;
    const log = new TestLogger();
    const watcher = noticeWatcherFor({ metadata: 'ec2', imds: { endpoint: imds.url('m1') } }, { clock, logger: log });
    const notices: Date[] = [];
    watcher!.start((at) => notices.push(at));
    m.spotAction = JSON.stringify({ action: 'stop', time: '2026-01-01T00:02:00Z' });
    await advanceWatching(2_000, 1);
    expect(notices).toEqual([]);
    expect(log.lines.some((l) => l.msg === 'reading termination notices failed')).toBe(true);
    imds.failWith = undefined;
    await advanceWatching(1_000, 1);
    expect(notices).toEqual([new Date('2026-01-01T00:02:00Z')]);
    watcher!.stop();
  });
});

describe('notice sender with recommendations', () => {
  it('sends a rebalance recommendation at once when connected, else the latest at the next flush, after any notice', () => {
    const link = new FakeLink();
    link.connected = false;
    const sender = new NoticeSender({ send: link.send, logger: new TestLogger() });
    sender.reportRebalance(new Date('2026-01-01T00:00:10Z'));
    sender.reportRebalance(new Date('2026-01-01T00:00:20Z'));
    sender.report(new Date('2026-01-01T00:02:00Z'));
    link.connected = true;
    sender.flush();
    sender.flush();
    expect(link.sent).toEqual([
      { type: 'notice', terminateAt: '2026-01-01T00:02:00.000Z' },
      { type: 'rebalance', noticeTime: '2026-01-01T00:00:20.000Z' },
    ]);
    sender.reportRebalance(new Date('2026-01-01T00:01:00Z'));
    expect(link.sent.at(-1)).toEqual({ type: 'rebalance', noticeTime: '2026-01-01T00:01:00.000Z' });
  });
});
