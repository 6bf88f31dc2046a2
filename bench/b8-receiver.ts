/**
 * B8/B9's webhook receiver, in its own process (a receiver is another program: its CPU is not
 * the bench's). A plain `node:http` server on 127.0.0.1 that answers every POST 200 at once and
 * records, per request, the `Drover-Event-Id` header and when the body had arrived
 * (`performance.timeOrigin + performance.now()`: the machine's clock, as the bench process reads
 * it). Over IPC: it sends `{ ready, url }` once listening; `{ cmd: 'count' }` answers how many
 * requests it got, `{ cmd: 'take' }` answers the records and forgets them.
 */
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { performance } from 'node:perf_hooks';

export interface Arrival {
  eventId: string;
  /** Epoch ms (fractional) when the request's body had arrived. */
  at: number;
}

export type ReceiverCommand = { seq: number; cmd: 'count' } | { seq: number; cmd: 'take' };
export type ReceiverReply = { seq: number; count: number } | { seq: number; arrivals: Arrival[] };
export interface ReceiverReady {
  ready: true;
  url: string;
}

const arrivals: Arrival[] = [];
const server = createServer((req, res) => {
  req.resume();
  req.on('end', () => {
    arrivals.push({ eventId: String(req.headers['drover-event-id'] ?? ''), at: performance.timeOrigin + performance.now() });
    res.writeHead(200, { 'Content-Type': 'text/plain', 'Content-Length': '2' }).end('ok');
  });
});
server.keepAliveTimeout = 60_000;

server.listen(0, '127.0.0.1', () => {
  const { port } = server.address() as AddressInfo;
  process.send?.({ ready: true, url: `http://127.0.0.1:${port}/hook` } satisfies ReceiverReady);
});

process.on('message', (message: ReceiverCommand) => {
  if (message.cmd === 'count') process.send?.({ seq: message.seq, count: arrivals.length } satisfies ReceiverReply);
  else if (message.cmd === 'take') process.send?.({ seq: message.seq, arrivals: arrivals.splice(0) } satisfies ReceiverReply);
});
// The bench went away: so does the receiver.
process.on('disconnect', () => process.exit(0));
