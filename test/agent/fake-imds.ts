/**
 * A minimal EC2 instance metadata service (IMDSv2) on loopback, for the agent's tests: sessions
 * (PUT /latest/api/token with a TTL header; reads need the token), the instance id, a spot
 * interruption notice and a rebalance recommendation, each set by the test. Every instance is
 * served under its own path prefix (`/<instanceId>`), as `url(instanceId)` gives it.
 */
import { randomBytes } from 'node:crypto';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';

export interface FakeMachine {
  /** What /latest/meta-data/instance-id answers. */
  instanceId: string;
  /** The body of spot/instance-action (undefined: 404). */
  spotAction?: string;
  /** The body of events/recommendations/rebalance (undefined: 404). */
  rebalance?: string;
}

export class FakeImds {
  readonly server: Server;
  private readonly machines = new Map<string, FakeMachine>();
  /** Valid session tokens, with the TTL each was asked for. */
  private readonly tokens = new Map<string, number>();
  /** Every request: method, path (without the machine prefix), the token TTL header, whether it carried a valid token. */
  readonly requests: Array<{ method: string; path: string; ttl: string | undefined; tokenValid: boolean }> = [];
  /** While true, requests are never answered (timeouts). */
  hang = false;
  /** Answer reads with this status instead (e.g. 500). */
  failWith: number | undefined;

  constructor() {
    this.server = createServer((req, res) => this.handle(req, res));
  }

  async listen(): Promise<string> {
    await new Promise<void>((resolve) => this.server.listen(0, '127.0.0.1', resolve));
    return `http://127.0.0.1:${(this.server.address() as AddressInfo).port}`;
  }

  /** The IMDS base URL of one machine (the path prefix is its key). */
  url(key: string): string {
    return `http://127.0.0.1:${(this.server.address() as AddressInfo).port}/${key}`;
  }

  machine(key: string, machine: FakeMachine): FakeMachine {
    this.machines.set(key, machine);
    return machine;
  }

  /** Forgets every session token (as an IMDS restart would): the next read is answered 401. */
  expireTokens(): void {
    this.tokens.clear();
  }

  get tokenRequests(): number {
    return this.requests.filter((r) => r.method === 'PUT').length;
  }

  async close(): Promise<void> {
    this.server.closeAllConnections();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }

  private handle(req: IncomingMessage, res: ServerResponse): void {
    const [, key = '', ...rest] = (req.url ?? '/').split('/');
    const path = `/${rest.join('/')}`;
    const token = req.headers['x-aws-ec2-metadata-token'];
    const ttlHeader = req.headers['x-aws-ec2-metadata-token-ttl-seconds'];
    const ttl = Array.isArray(ttlHeader) ? ttlHeader[0] : ttlHeader;
    const tokenValid = typeof token === 'string' && this.tokens.has(token);
    this.requests.push({ method: req.method ?? '', path, ttl, tokenValid });
    if (this.hang) return;
    const machine = this.machines.get(key);
    const send = (status: number, body = ''): void => {
      res.writeHead(status, { 'content-type': 'text/plain' }).end(body);
    };
    if (!machine) return send(404);
    if (req.method === 'PUT' && path === '/latest/api/token') {
      const seconds = Number(ttl);
      if (!Number.isInteger(seconds) || seconds < 1 || seconds > 21_600) return send(400);
      const value = randomBytes(24).toString('base64');
      this.tokens.set(value, seconds);
      return send(200, value);
    }
    if (req.method !== 'GET') return send(405);
    if (!tokenValid) return send(401);
    if (this.failWith !== undefined) return send(this.failWith);
    switch (path) {
      case '/latest/meta-data/instance-id':
        return send(200, machine.instanceId);
      case '/latest/meta-data/spot/instance-action':
        return machine.spotAction === undefined ? send(404) : send(200, machine.spotAction);
      case '/latest/meta-data/events/recommendations/rebalance':
        return machine.rebalance === undefined ? send(404) : send(200, machine.rebalance);
      case '/big':
        return send(200, 'x'.repeat(100_000));
      default:
        return send(404);
    }
  }
}
