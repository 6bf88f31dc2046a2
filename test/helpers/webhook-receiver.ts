/**
 * A webhook receiver on loopback (a real HTTP server) for the notification tests: records every
 * request and answers as the test says: a status; never ('hang': the request is held until
 * `dropHanging` or the sender goes away); or by resetting the connection ('reset').
 */
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';

export interface ReceivedRequest {
  /** 1-based number of the request. */
  n: number;
  headers: IncomingMessage['headers'];
  body: string;
  /** What it was answered: a status, 'hang' or 'reset'. */
  answered: Answer;
  receivedAtMs: number;
}

export type Answer = number | 'hang' | 'reset';

export class WebhookReceiver {
  readonly requests: ReceivedRequest[] = [];
  private readonly hanging = new Set<ServerResponse>();
  private waiters: Array<{ check: () => boolean; resolve: () => void }> = [];

  private constructor(
    private readonly server: Server,
    public answer: (n: number, body: string) => Answer,
  ) {}

  static async start(answer: (n: number, body: string) => Answer = () => 200): Promise<WebhookReceiver> {
    const server = createServer();
    const receiver = new WebhookReceiver(server, answer);
    server.on('request', (req, res) => {
      const chunks: Buffer[] = [];
      req.on('data', (c: Buffer) => chunks.push(c));
      req.on('end', () => {
        const body = Buffer.concat(chunks).toString('utf8');
        const n = receiver.requests.length + 1;
        const answered = receiver.answer(n, body);
        receiver.requests.push({ n, headers: req.headers, body, answered, receivedAtMs: Date.now() });
        if (answered === 'hang') {
          receiver.hanging.add(res);
          res.once('close', () => receiver.hanging.delete(res));
        }
        else if (answered === 'reset') req.socket.destroy();
        else res.writeHead(answered, { 'Content-Type': 'text/plain' }).end(answered < 300 ? 'ok' : 'no');
        receiver.check();
      });
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    return receiver;
  }

  get url(): string {
    return `http://127.0.0.1:${(this.server.address() as AddressInfo).port}/hook`;
  }

  /** The requests answered 2xx. */
  accepted(): ReceivedRequest[] {
    return this.requests.filter((r) => typeof r.answered === 'number' && r.answered >= 200 && r.answered < 300);
  }

  /** The requests held unanswered now ('hang' and not dropped). */
  get held(): number {
    return this.hanging.size;
  }

  /** Resolves once `check` holds (checked after each request). */
  until(check: () => boolean): Promise<void> {
    if (check()) return Promise.resolve();
    return new Promise((resolve) => this.waiters.push({ check, resolve }));
  }

  private check(): void {
    this.waiters = this.waiters.filter((w) => {
      if (!w.check()) return true;
      w.resolve();
      return false;
    });
  }

  /** Ends the hanging requests by destroying their sockets. */
  dropHanging(): void {
    for (const res of this.hanging) res.socket?.destroy();
    this.hanging.clear();
  }

  async close(): Promise<void> {
    this.dropHanging();
    this.server.closeAllConnections();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }
}
