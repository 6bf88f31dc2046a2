/**
 * Notice watchers alone (the polling watcher with a scripted source, the file watcher on a real
 * file) and the notice sender with a fake `send`; time from a ManualClock.
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { NoticeSender, noticeWatcherFor, PollingNoticeWatcher, readNoticeFile } from '../../src/agent/notice-watcher.js';
import { ManualClock } from '../../src/clock/index.js';
import { FakeLink } from './fakes.js';
import { TestLogger } from './harness.js';

let dir: string;
beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), 'drover-notice-'));
});
afterEach(() => rmSync(dir, { recursive: true, force: true }));

const at = (iso: string): Date => new Date(iso);

describe('polling notice watcher', () => {
  it('reads at once and every pollMs, and reports each distinct notice once', async () => {
    const clock = new ManualClock();
    // What the source holds at each read, in order (then the last one for ever).
    const script = [undefined, at('2026-01-01T01:00:00Z'), at('2026-01-01T01:00:00Z'), undefined, at('2026-01-01T01:00:00Z'), at('2026-01-01T00:30:00Z')];
    let reads = 0;
    const watcher = new PollingNoticeWatcher({ clock, logger: new TestLogger(), pollMs: 100, source: 'script', read: () => script[Math.min(reads++, script.length - 1)] });
    const seen: string[] = [];
    watcher.start((terminateAt) => seen.push(terminateAt.toISOString()));
    await clock.advance(0);
    expect(reads).toBe(1);
    await clock.advance(99);
    expect(reads).toBe(1);
    await clock.advance(1_000);
    expect(reads).toBe(11);
    // The same notice read again (even after a read without one) is not reported again.
    expect(seen).toEqual(['2026-01-01T01:00:00.000Z', '2026-01-01T00:30:00.000Z']);
    watcher.stop();
  });

  it('takes a read that fails as no notice, logs it, and keeps polling', async () => {
    const clock = new ManualClock();
    const log = new TestLogger();
    let reads = 0;
    const watcher = new PollingNoticeWatcher({
      clock,
      logger: log,
      pollMs: 100,
      source: 'http://metadata',
      read: () => (++reads === 1 ? Promise.reject(new Error('timed out')) : Promise.resolve(at('2026-01-01T01:00:00Z'))),
    });
    const seen: Date[] = [];
    watcher.start((terminateAt) => seen.push(terminateAt));
    await clock.advance(0);
    expect(seen).toEqual([]);
    expect(log.lines.find((l) => l.msg === 'reading termination notices failed')?.obj).toEqual({ source: 'http://metadata', err: 'timed out' });
    await clock.advance(100);
    expect(seen).toEqual([at('2026-01-01T01:00:00Z')]);
    watcher.stop();
  });

  it('reports nothing after stop(), not even what a read in flight returns', async () => {
    const clock = new ManualClock();
    let finishRead: (d: Date) => void = () => undefined;
    let reads = 0;
    const watcher = new PollingNoticeWatcher({
      clock,
      logger: new TestLogger(),
      pollMs: 100,
      source: 'slow',
      read: () => {
        reads++;
        return new Promise<Date>((resolve) => (finishRead = resolve));
      },
    });
    const seen: Date[] = [];
    watcher.start((terminateAt) => seen.push(terminateAt));
    await clock.advance(0);
    watcher.stop();
    finishRead(at('2026-01-01T01:00:00Z'));
    await clock.advance(1_000);
    expect(seen).toEqual([]);
    expect(reads).toBe(1);
    expect(clock.pendingTimers()).toBe(0);
  });
});

describe('notice file', () => {
  it('reads terminateAt as a time; a missing, unreadable or invalid file is no notice', () => {
    const path = join(dir, 'notice.json');
    expect(readNoticeFile(path)).toBeUndefined();
    for (const text of ['', 'not json', '[]', 'null', '{}', '{"terminateAt":42}', '{"terminateAt":"soon"}']) {
      writeFileSync(path, text);
      expect(readNoticeFile(path), text).toBeUndefined();
    }
    writeFileSync(path, JSON.stringify({ terminateAt: '2026-01-01T02:00:00+01:00' }));
    expect(readNoticeFile(path)).toEqual(at('2026-01-01T01:00:00Z'));
  });

  it('is watched when the config names one (every second by default), and there is no watcher when it does not', async () => {
    const clock = new ManualClock();
    const noticeFile = join(dir, 'notice.json');
    expect(noticeWatcherFor({}, { clock, logger: new TestLogger() })).toBeUndefined();
    const watcher = noticeWatcherFor({ noticeFile }, { clock, logger: new TestLogger() });
    const seen: Date[] = [];
    watcher!.start((terminateAt) => seen.push(terminateAt));
    await clock.advance(0);
    writeFileSync(noticeFile, JSON.stringify({ terminateAt: '2026-01-01T01:00:00Z' }));
    await clock.advance(999);
    expect(seen).toEqual([]);
    await clock.advance(1);
    expect(seen).toEqual([at('2026-01-01T01:00:00Z')]);
    await clock.advance(5_000);
    expect(seen).toHaveLength(1);
    watcher!.stop();
  });
});

describe('notice sender', () => {
  it('sends a notice at once when connected', () => {
    const link = new FakeLink();
    const sender = new NoticeSender({ send: link.send, logger: new TestLogger() });
    sender.report(at('2026-01-01T02:00:00+01:00'));
    expect(link.sent).toEqual([{ type: 'notice', terminateAt: '2026-01-01T01:00:00.000Z' }]);
    sender.flush();
    expect(link.sent).toHaveLength(1);
  });

  it('keeps the latest notice seen while disconnected and sends it once on flush()', () => {
    const link = new FakeLink();
    link.connected = false;
    const sender = new NoticeSender({ send: link.send, logger: new TestLogger() });
    sender.report(at('2026-01-01T01:00:00Z'));
    sender.report(at('2026-01-01T00:30:00Z'));
    sender.flush();
    expect(link.sent).toEqual([]);
    link.connected = true;
    sender.flush();
    sender.flush();
    expect(link.sent).toEqual([{ type: 'notice', terminateAt: '2026-01-01T00:30:00.000Z' }]);
  });
});
