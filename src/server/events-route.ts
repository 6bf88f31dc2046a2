/**
 * `GET /v1/events`: server-sent events. First `hello`, then every bus event the caller may see
 * (a token limited to some tenants gets only theirs; shard-wide events keep no tenant's detail).
 *
 * Limits: at most `maxEventSubscribers` streams at once (more get 503); a client that does not
 * read, whose unsent output passes MAX_BUFFERED_BYTES, is dropped (it reconnects and resumes);
 * a `Last-Event-ID` resume replays at most MAX_REPLAY audit entries — one that missed more gets
 * `reset` instead, telling it to fetch the current state afresh.
 */
import type { FastifyInstance } from 'fastify';
import type { Clock, TimerHandle } from '../clock/index.js';
import { UnavailableError } from '../errors/index.js';
import type { LeaderElector } from '../leader/index.js';
import type { Logger } from '../logging/index.js';
import type { LocalDb } from '../store/index.js';
import { ANONYMOUS_ADMIN, seesTenant, tenantOfGroupKey, type Principal } from './auth.js';
import type { BusEvent, EventBus } from './event-bus.js';
import { defineRoute } from './route-spec.js';
import { auditView } from './views.js';

export const MAX_REPLAY = 1_000;
export const MAX_BUFFERED_BYTES = 1024 * 1024;
const HEARTBEAT_MS = 15_000;

export interface EventStreamDeps {
  clock: Clock;
  logger: Logger;
  db: LocalDb;
  bus: EventBus;
  elector: LeaderElector;
  maxEventSubscribers: number;
}


/** The event as this caller may see it, or null when it concerns another tenant. */
export function visibleEvent(event: BusEvent, principal: Principal): BusEvent | null {
  if (principal.tenants === null) return event;
  const data = (event.data ?? {}) as Record<string, unknown>;
  switch (event.type) {
    case 'audit':
    case 'health':
    case 'rebalance':
      return typeof data.tenant === 'string' && seesTenant(principal, data.tenant) ? event : null;
    case 'drain':
    case 'error':
      return typeof data.group === 'string' && data.group !== '' && seesTenant(principal, tenantOfGroupKey(data.group)) ? event : null;
    case 'config':
      // A rejected file's issues name every tenant's groups: only that it was rejected.
      return data.ok === false ? { type: 'config', data: { ok: false, at: data.at, error: 'the config file was rejected; the previous config stays in force' } } : event;
    case 'leader':
      return event;
  }
}

export function registerEventStream(app: FastifyInstance, deps: EventStreamDeps): void {
  const { clock, db, bus } = deps;
  let open = 0;
  defineRoute(
    app,
    {
      method: 'GET',
      url: '/v1/events',
      access: 'viewer',
      tag: 'events',
      summary: 'The live event stream (server-sent events)',
      description:
        'First `hello` (`{leader, serverTime}`), then each event the caller may see as it happens: `audit` (an AuditView, with `id:` its sequence), `health`, `drain`, `error`, `config`, `leader`, `rebalance`; a comment line every 15 s keeps it open. ' +
        `Resume with \`Last-Event-ID\`: up to ${MAX_REPLAY} missed audit entries are replayed, or \`reset\` says to fetch the current state afresh.`,
      responses: { 200: { description: 'The stream; it stays open.', contentType: 'text/event-stream' } },
      errors: { 503: 'Too many streams open already (`server.maxEventSubscribers`).' },
    },
    async ({ req, reply }) => {
      if (open >= deps.maxEventSubscribers) throw new UnavailableError(`the event stream has ${deps.maxEventSubscribers} clients already (server.maxEventSubscribers); retry later`);
      const principal = req.principal ?? ANONYMOUS_ADMIN;
      const tenants = principal.tenants ? [...principal.tenants] : undefined;
      reply.hijack();
      open++;
      const res = reply.raw;
      res.writeHead(200, { 'Content-Type': 'text/event-stream; charset=utf-8', 'Cache-Control': 'no-cache', Connection: 'keep-alive', 'X-Accel-Buffering': 'no' });
      let closed = false;
      let heartbeat: TimerHandle | undefined;
      let unsubscribe = (): void => {};
      const cleanup = (): void => {
        if (closed) return;
        closed = true;
        open--;
        unsubscribe();
        heartbeat?.cancel();
      };
      const send = (text: string): void => {
        if (closed) return;
        if (res.writableLength > MAX_BUFFERED_BYTES) {
          // A client that does not read must not grow the server's memory without bound.
          deps.logger.warn({ principal: principal.name, buffered: res.writableLength }, 'event stream client too slow; dropped');
          cleanup();
          res.destroy();
          return;
        }
        res.write(text);
      };
      const write = (event: BusEvent): void => {
        const visible = visibleEvent(event, principal);
        if (visible) send(`${visible.id ? `id: ${visible.id}\n` : ''}event: ${visible.type}\ndata: ${JSON.stringify(visible.data)}\n\n`);
      };
      send('retry: 2000\n\n');
      send(`event: hello\ndata: ${JSON.stringify({ leader: deps.elector.isLeader(), serverTime: clock.now().toISOString() })}\n\n`);
      // Resume: replay the audit entries the client missed, unless there are too many to replay.
      const lastIdText = req.headers['last-event-id'];
      const lastId = typeof lastIdText === 'string' && /^\d{1,15}$/.test(lastIdText) ? Number(lastIdText) : 0;
      if (lastId > 0) {
        const missed = db.listAudit({ afterSeq: lastId, limit: MAX_REPLAY + 1, ...(tenants ? { tenants } : {}) });
        if (missed.length > MAX_REPLAY) send(`event: reset\ndata: ${JSON.stringify({ reason: `more than ${MAX_REPLAY} entries missed; fetch the current state` })}\n\n`);
        else for (const entry of missed) write({ type: 'audit', id: String(entry.seq), data: auditView(entry) });
      }
      unsubscribe = bus.subscribe(write);
      const beat = (): void => {
        heartbeat = clock.schedule(clock.nowMs() + HEARTBEAT_MS, () => {
          send(': keep-alive\n\n');
          if (!closed) beat();
        });
      };
      beat();
      req.raw.on('close', cleanup);
      res.on('error', cleanup);
      res.on('close', cleanup);
      return reply;
    },
  );
}
