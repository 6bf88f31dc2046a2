/**
 * A minimal Hetzner Cloud server metadata service on loopback, for the agent's tests: plain GETs
 * of `/hetzner/v1/metadata/instance-id` (and hostname, region, availability-zone), no session.
 * Every server is served under its own path prefix (`/<key>`), as `url(key)` gives it.
 */
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';

export interface FakeHetznerServer {
  /** What /hetzner/v1/metadata/instance-id answers (any text: tests give non-numbers too). */
  instanceId: string;
  hostname?: string;
  region?: string;
  availabilityZone?: string;
}

export class FakeHetznerMetadata {
  readonly server: Server;
  private readonly servers = new Map<string, FakeHetznerServer>();
  /** Every request: method, the key (path prefix), and the path under it. */
  readonly requests: Array<{ method: string; key: string; path: string }> = [];
  /** While true, requests are never answered (timeouts). */
  hang = false;
  /** Answer every read with this status instead (e.g. 500). */
  failWith: number | undefined;

  constructor() {
    this.server = createServer((req, res) => this.handle(req, res));
  }

  async listen(): Promise<void> {
    await new Promise<void>((resolve) => this.server.listen(0, '127.0.0.1', resolve));
  }

  /** The metadata base URL of one server (the path prefix is its key). */
  url(key: string): string {
    return `http://127.0.0.1:${(this.server.address() as AddressInfo).port}/${key}`;
  }

  machine(key: string, server: FakeHetznerServer): FakeHetznerServer {
    this.servers.set(key, server);
    return server;
  }

  async close(): Promise<void> {
    this.server.closeAllConnections();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }

  private handle(req: IncomingMessage, res: ServerResponse): void {
    const [, key = '', ...rest] = (req.url ?? '/').split('/');
    const path = `/${rest.join('/')}`;
    this.requests.push({ method: req.method ?? '', key, path });
    if (this.hang) return;
    const send = (status: number, body = ''): void => {
      res.writeHead(status, { 'content-type': 'text/plain' }).end(body);
    };
    const server = this.servers.get(key);
    if (!server) return send(404);
    if (req.method !== 'GET') return send(405);
    if (this.failWith !== undefined) return send(this.failWith);
    const leaf = (value: string | undefined): void => (value === undefined ? send(404) : send(200, value));
    switch (path) {
      case '/hetzner/v1/metadata/instance-id':
        return leaf(server.instanceId);
      case '/hetzner/v1/metadata/hostname':
        return leaf(server.hostname);
      case '/hetzner/v1/metadata/region':
        return leaf(server.region);
      case '/hetzner/v1/metadata/availability-zone':
        return leaf(server.availabilityZone);
      case '/big':
        return send(200, 'x'.repeat(100_000));
      default:
        return send(404);
    }
  }
}
