/**
 * What every fake cloud server shares: an HTTP server on 127.0.0.1 (an ephemeral port), request
 * bodies read with a size limit, answers that may be delayed (a cloud's latency) without holding
 * other requests, and a close that drops kept-alive connections and delayed answers.
 */
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';

export class LoopbackServer {
  private server: Server | undefined;
  private readonly timers = new Set<NodeJS.Timeout>();

  /** `name` says which fake in errors; `handler` answers each request. */
  constructor(
    private readonly name: string,
    private readonly handler: (req: IncomingMessage, res: ServerResponse) => void,
  ) {}

  /** Listens; answers the origin, `http://127.0.0.1:<port>`. */
  async start(): Promise<string> {
    if (this.server) throw new Error(`${this.name} already started`);
    const server = createServer((req, res) => this.handler(req, res));
    this.server = server;
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(0, '127.0.0.1', () => {
        server.off('error', reject);
        resolve();
      });
    });
    return this.origin;
  }

  get origin(): string {
    if (!this.server) throw new Error(`${this.name} not started`);
    return `http://127.0.0.1:${(this.server.address() as AddressInfo).port}`;
  }

  get started(): boolean {
    return this.server !== undefined;
  }

  /** Runs `send` after `delayMs` (at once when ≤ 0); a close drops it. */
  later(delayMs: number, send: () => void): void {
    if (delayMs <= 0) {
      send();
      return;
    }
    const timer = setTimeout(() => {
      this.timers.delete(timer);
      send();
    }, delayMs);
    this.timers.add(timer);
  }

  /** Stops listening, drops kept-alive connections and answers still delayed. */
  async close(): Promise<void> {
    for (const t of this.timers) clearTimeout(t);
    this.timers.clear();
    const server = this.server;
    if (!server) return;
    this.server = undefined;
    await new Promise<void>((resolve) => {
      server.close(() => resolve());
      server.closeAllConnections();
    });
  }
}

/** Reads a request's body; `onEnd` gets it as text, or undefined when it is larger than `maxBytes`. */
export function readBody(req: IncomingMessage, maxBytes: number, onEnd: (body: string | undefined) => void): void {
  const chunks: Buffer[] = [];
  let size = 0;
  let tooLarge = false;
  req.on('data', (chunk: Buffer) => {
    size += chunk.length;
    if (size > maxBytes) tooLarge = true;
    else chunks.push(chunk);
  });
  req.on('end', () => onEnd(tooLarge ? undefined : Buffer.concat(chunks).toString('utf8')));
}
