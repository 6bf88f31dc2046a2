/**
 * The connection alone, against the stand-in server (real WebSockets) on a ManualClock: its
 * reconnects, silence checks and close waits are timers the test moves; nothing else of the
 * agent runs. Which server it tries after a 503 is tested through the agent (agent-ha.test.ts).
 */
import { EventEmitter } from 'node:events';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { WebSocket } from 'ws';
import { ServerConnection, type ConnectionEvents, type ConnectionOptions, type Refusal, type SessionMessage } from '../../src/agent/connection.js';
import { ManualClock } from '../../src/clock/index.js';
import { CREDENTIAL, INSTANCE, TestLogger, TestServer } from './harness.js';

type ConnectionEvent = { kind: 'welcomed'; intervalMs: number } | { kind: 'message'; msg: SessionMessage } | { kind: 'disconnected' } | { kind: 'gaveUp'; refusal: Refusal };

/** Records the connection's events and lets a test await the next of a kind. */
class Recorder extends EventEmitter implements ConnectionEvents {
  readonly events: ConnectionEvent[] = [];
  welcomed(intervalMs: number): void {
    this.add({ kind: 'welcomed', intervalMs });
  }
  message(msg: SessionMessage): void {
    this.add({ kind: 'message', msg });
  }
  disconnected(): void {
    this.add({ kind: 'disconnected' });
  }
  gaveUp(refusal: Refusal): void {
    this.add({ kind: 'gaveUp', refusal });
  }
  next<K extends ConnectionEvent['kind']>(kind: K): Promise<Extract<ConnectionEvent, { kind: K }>> {
    return new Promise((resolve) => {
      const on = (event: ConnectionEvent): void => {
        if (event.kind !== kind) return;
        this.off('event', on);
        resolve(event as Extract<ConnectionEvent, { kind: K }>);
      };
      this.on('event', on);
    });
  }
  private add(event: ConnectionEvent): void {
    this.events.push(event);
    this.emit('event', event);
  }
}

/** Counts the connections the agent opens (synchronously, unlike what the server sees). */
/** `ws`'s WebSocket, counting the connections made (the agent's only way to open one). */
const CountingWebSocket = Object.assign(
  class extends WebSocket {
    constructor(...args: ConstructorParameters<typeof WebSocket>) {
      super(...args);
      CountingWebSocket.made++;
    }
  } as typeof WebSocket,
  { made: 0 },
);

let server: TestServer;
let serverUrl: string;
let clock: ManualClock;
let events: Recorder;
let connection: ServerConnection | undefined;

beforeEach(async () => {
  server = new TestServer();
  serverUrl = await server.listen();
  clock = new ManualClock();
  events = new Recorder();
  CountingWebSocket.made = 0;
});

afterEach(async () => {
  await connection?.close();
  connection = undefined;
  await server.close();
});

function connect(options: Partial<ConnectionOptions> = {}): ServerConnection {
  connection = new ServerConnection({
    config: { instanceId: INSTANCE, servers: [serverUrl], credential: CREDENTIAL, healthCheckIntervalMs: 1_000 },
    clock,
    logger: new TestLogger(),
    events,
    random: () => 1,
    reconnectInitialMs: 100,
    ...options,
  });
  connection.start();
  return connection;
}

/** Waits (on real I/O) until the connection has put its retry on the clock, then moves the clock there. */
async function nextAttempt(): Promise<void> {
  await expect.poll(() => clock.nextTimerAt(), { timeout: 5_000, interval: 5 }).not.toBeNull();
  await clock.advanceTo(clock.nextTimerAt()!);
}

describe('agent connection', () => {
  it('sends only between a welcome and the close of that connection, and passes server messages on', async () => {
    server.sendWelcome = false;
    const conn = connect();
    await server.nextConnection();
    expect(conn.send({ type: 'health' })).toBe(false);
    expect(conn.connected).toBe(false);
    expect(conn.intervalMs).toBe(1_000); // the configured one until a welcome

    const welcomed = events.next('welcomed');
    server.send(0, { type: 'welcome', instanceId: INSTANCE, healthCheckIntervalMs: 2_000, serverTime: '' });
    expect(await welcomed).toEqual({ kind: 'welcomed', intervalMs: 2_000 });
    expect(conn.connected).toBe(true);
    expect(conn.intervalMs).toBe(2_000);
    expect(conn.send({ type: 'health' })).toBe(true);
    expect((await server.nextMessage((m) => m.type === 'health', 0)).msg).toEqual({ type: 'health' });

    const message = events.next('message');
    server.send(0, { type: 'drain', reason: 'expiry', deadline: '2026-01-01T01:00:00.000Z' });
    expect((await message).msg).toEqual({ type: 'drain', reason: 'expiry', deadline: '2026-01-01T01:00:00.000Z' });

    const disconnected = events.next('disconnected');
    server.sockets[0]!.terminate();
    await disconnected;
    expect(conn.connected).toBe(false);
    expect(conn.send({ type: 'health' })).toBe(false);
    expect(events.events.map((e) => e.kind)).toEqual(['welcomed', 'message', 'disconnected']);
  });

  it('reconnects after the backoff and is welcomed again', async () => {
    const first = events.next('welcomed');
    const conn = connect();
    await first;
    const disconnected = events.next('disconnected');
    server.sockets[0]!.terminate();
    await disconnected;
    // random() = 1: the first retry waits the whole initial delay.
    await expect.poll(() => clock.nextTimerAt(), { timeout: 5_000, interval: 5 }).toBe(clock.nowMs() + 100);
    const welcomed = events.next('welcomed');
    await nextAttempt();
    await welcomed;
    expect(server.sockets).toHaveLength(2);
    expect(conn.connected).toBe(true);
  });

  it('clamps the interval a welcome sets to between 10 ms and 24 h', async () => {
    server.intervalMs = 1;
    const first = events.next('welcomed');
    connect();
    expect(await first).toEqual({ kind: 'welcomed', intervalMs: 10 });
    server.intervalMs = 1e12;
    const lost = events.next('disconnected');
    server.sockets[0]!.terminate();
    await lost;
    const again = events.next('welcomed');
    await nextAttempt();
    expect(await again).toEqual({ kind: 'welcomed', intervalMs: 24 * 3_600_000 });
  });

  it('gives up after maxRefusals consecutive 401s (credential) and tries no more', async () => {
    server.refuseWith = 401;
    const gaveUp = events.next('gaveUp');
    connect({ maxRefusals: 3 });
    await expect.poll(() => server.upgrades.length, { timeout: 5_000, interval: 5 }).toBe(1);
    await nextAttempt();
    await nextAttempt();
    expect(await gaveUp).toEqual({ kind: 'gaveUp', refusal: 'credential' });
    expect(server.upgrades).toHaveLength(3);
    expect(clock.pendingTimers()).toBe(0);
    expect(events.events.filter((e) => e.kind === 'disconnected')).toHaveLength(3);
  });

  it('gives up on 403 and on close code 4403 as "deleted"; a welcome in between resets the count', async () => {
    server.on('connection', (conn: number) => {
      if (conn !== 1) server.sockets[conn]!.close(4403, 'instance deleted');
    });
    const deleted = events.next('disconnected');
    connect({ maxRefusals: 2 });
    await deleted; // refusal 1 of 2
    const welcomed = events.next('welcomed');
    await nextAttempt();
    await welcomed; // connection 1 is kept: the count starts again
    const lost = events.next('disconnected');
    server.sockets[1]!.terminate();
    await lost;
    server.refuseWith = 403;
    const refused = events.next('disconnected');
    await nextAttempt();
    await refused; // refusal 1 of 2 again
    expect(events.events.some((e) => e.kind === 'gaveUp')).toBe(false);
    const gaveUp = events.next('gaveUp');
    await nextAttempt();
    expect(await gaveUp).toEqual({ kind: 'gaveUp', refusal: 'deleted' });
    expect(server.upgrades).toHaveLength(4);
  });

  it('drops a connection on which the server is silent for serverSilenceMs, and reconnects', async () => {
    server.intervalMs = 1_000; // silence is checked every interval
    const welcomedFirst = events.next('welcomed');
    connect({ serverSilenceMs: 2_500 });
    await welcomedFirst;
    const disconnected = events.next('disconnected');
    await clock.advance(2_000);
    expect(events.events.map((e) => e.kind)).toEqual(['welcomed']);
    await clock.advance(1_000); // the check at 3 s finds 3 s of silence
    await disconnected;
    expect(server.sockets).toHaveLength(1);
    const welcomed = events.next('welcomed');
    await nextAttempt();
    await welcomed;
    expect(server.sockets).toHaveLength(2);
  });

  it('announces that it takes pongs as heartbeats, and counts an unsolicited pong from the server as hearing it', async () => {
    server.intervalMs = 1_000;
    let pongs = 0;
    // Counts the pongs the agent's socket receives; its own listener runs in the same emit.
    const PongCounting = class extends WebSocket {
      constructor(...args: ConstructorParameters<typeof WebSocket>) {
        super(...args);
        this.on('pong', () => pongs++);
      }
    } as typeof WebSocket;
    const welcomed = events.next('welcomed');
    connect({ serverSilenceMs: 2_500, WebSocketImpl: PongCounting });
    await welcomed;
    expect(server.upgrades[0]!.headers['x-drover-heartbeat']).toBe('pong');
    await clock.advance(2_000);
    server.sockets[0]!.pong();
    await expect.poll(() => pongs, { timeout: 5_000 }).toBe(1);
    // Heard at 2 s: the checks at 3 and 4 s find 1 and 2 s of silence; the one at 5 s, 3 s.
    await clock.advance(2_000);
    expect(events.events.map((e) => e.kind)).toEqual(['welcomed']);
    const disconnected = events.next('disconnected');
    await clock.advance(1_000);
    await disconnected;
  });

  it('close(goodbye) says goodbye, closes with 1000, and does not reconnect', async () => {
    const welcomed = events.next('welcomed');
    const conn = connect({ WebSocketImpl: CountingWebSocket });
    await welcomed;
    const closed = server.nextClose();
    await conn.close('shutting down');
    expect(await closed).toEqual({ conn: 0, code: 1000 });
    expect(server.of('goodbye').map((r) => r.msg)).toEqual([{ type: 'goodbye', reason: 'shutting down' }]);
    await clock.advance(60_000);
    expect(CountingWebSocket.made).toBe(1);
    expect(conn.send({ type: 'health' })).toBe(false);
    expect(events.events.map((e) => e.kind)).toEqual(['welcomed']);
  });
});
