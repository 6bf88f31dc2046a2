/**
 * The webhook transport against real HTTP servers on loopback: statuses as answered, redirects
 * not followed, an endless answer cut after MAX_ANSWER_BYTES, abort, errors, and kept-alive
 * sockets reused.
 */
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { MAX_ANSWER_BYTES, WebhookTransport } from '../../src/notifications/transport.js';

let server: Server | undefined;
let transport: WebhookTransport | undefined;
afterEach(async () => {
  transport?.close();
  server?.closeAllConnections();
  await new Promise<void>((resolve) => (server ? server.close(() => resolve()) : resolve()));
  server = undefined;
});

async function serve(handler: (req: IncomingMessage, res: ServerResponse) => void): Promise<string> {
  server = createServer(handler);
  await new Promise<void>((resolve) => server!.listen(0, '127.0.0.1', resolve));
  return `http://127.0.0.1:${(server.address() as AddressInfo).port}/hook`;
}

const HEADERS = { 'Content-Type': 'application/json' };

describe('WebhookTransport', () => {
  it('posts the body with its headers and resolves with the status; a redirect is the answer, not followed', async () => {
    const got: { body: string; headers: IncomingMessage['headers']; path: string | undefined }[] = [];
    const url = await serve((req, res) => {
      let body = '';
      req.on('data', (c: Buffer) => (body += c.toString()));
      req.on('end', () => {
        got.push({ body, headers: req.headers, path: req.url });
        if (req.url === '/hook') res.writeHead(302, { Location: '/elsewhere' }).end();
        else res.writeHead(204).end();
      });
    });
    transport = new WebhookTransport();
    const status = await transport.post('ops', url, 2, '{"a":1}', { ...HEADERS, 'Drover-Event-Id': 'ev-1' }).answer;
    expect(status).toBe(302);
    expect(got).toHaveLength(1);
    expect(got[0]).toMatchObject({ body: '{"a":1}', path: '/hook', headers: { 'drover-event-id': 'ev-1', 'content-length': '7' } });
    expect(await transport.post('ops', url.replace('/hook', '/ok'), 2, '{}', HEADERS).answer).toBe(204);
  });

  it('reuses a kept-alive socket for the next delivery to the same endpoint', async () => {
    const sockets = new Set<unknown>();
    const url = await serve((req, res) => {
      sockets.add(req.socket);
      req.resume();
      req.on('end', () => res.writeHead(200).end('ok'));
    });
    transport = new WebhookTransport();
    for (let i = 0; i < 5; i++) expect(await transport.post('ops', url, 1, '{}', HEADERS).answer).toBe(200);
    expect(sockets.size).toBe(1);
  });

  it('stops reading an endless answer after MAX_ANSWER_BYTES and still gives its status', async () => {
    let written = 0;
    const url = await serve((req, res) => {
      req.resume();
      res.writeHead(500);
      const chunk = Buffer.alloc(16 * 1024, 120);
      const pump = (): void => {
        while (!res.destroyed && written < 100 * MAX_ANSWER_BYTES) {
          written += chunk.length;
          if (!res.write(chunk)) return void res.once('drain', pump);
        }
      };
      res.on('close', () => undefined);
      pump();
    });
    transport = new WebhookTransport();
    expect(await transport.post('ops', url, 1, '{}', HEADERS).answer).toBe(500);
    expect(written).toBeLessThan(100 * MAX_ANSWER_BYTES);
  });

  it('rejects when aborted before the answer, and on a refused connection', async () => {
    let arrived!: () => void;
    const requested = new Promise<void>((resolve) => (arrived = resolve));
    const url = await serve(() => arrived()); // never answers
    transport = new WebhookTransport();
    const sent = transport.post('ops', url, 1, '{}', HEADERS);
    await requested;
    sent.abort();
    await expect(sent.answer).rejects.toThrow('aborted');
    await expect(transport.post('gone', 'http://127.0.0.1:1/hook', 1, '{}', HEADERS).answer).rejects.toThrow(/ECONNREFUSED/);
  });
});
