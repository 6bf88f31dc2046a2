/**
 * Webhook POSTs on node:http / node:https, with one keep-alive agent per endpoint (at most
 * `maxConcurrency` sockets). Not fetch: undici's fetch spent about 0.6 ms of CPU per request here
 * (Request, Headers, AbortSignal and body wrapping), and deliveries share the reconciler's thread;
 * the B8 benchmark measured the worker at 0.2 of a bare fetch loop before this.
 *
 * Contract of `post`: resolves with the receiver's HTTP status once its answer has ended, or once
 * the answer's body passed `MAX_ANSWER_BYTES` (the rest is not read: the socket is dropped, so a
 * receiver cannot make the server buffer or hold a slot with an endless body); rejects on a
 * network error or when aborted before an answer. Redirects are not followed (a 3xx is the answer).
 * TLS certificates are verified against the system's CAs.
 */
import { Agent as HttpAgent, request as httpRequest, type IncomingMessage } from 'node:http';
import { Agent as HttpsAgent, request as httpsRequest } from 'node:https';

/** Most bytes of an answer's body read (and thrown away) before the connection is dropped. */
export const MAX_ANSWER_BYTES = 64 * 1024;
/** An idle kept-alive socket is closed after this long: below the 5 s most servers keep one open, so Drover does not reuse a socket the receiver is closing. */
const IDLE_SOCKET_MS = 4_000;

export interface PendingPost {
  /** The receiver's status. */
  answer: Promise<number>;
  /** Cuts the request; `answer` rejects unless the answer was already complete. */
  abort(): void;
}

interface EndpointAgent {
  origin: string;
  maxSockets: number;
  agent: HttpAgent;
}

export class WebhookTransport {
  private readonly agents = new Map<string, EndpointAgent>();

  post(endpoint: string, url: string, maxSockets: number, body: string, headers: Readonly<Record<string, string>>): PendingPost {
    const target = new URL(url);
    const https = target.protocol === 'https:';
    const agent = this.agentFor(endpoint, target, https, maxSockets);
    let abort: () => void = () => undefined;
    const answer = new Promise<number>((resolve, reject) => {
      let settled = false;
      const settle = (outcome: () => void): void => {
        if (settled) return;
        settled = true;
        outcome();
      };
      const onAnswer = (res: IncomingMessage): void => {
        const status = res.statusCode ?? 0;
        let read = 0;
        res.on('data', (chunk: Buffer) => {
          read += chunk.length;
          if (read > MAX_ANSWER_BYTES) {
            settle(() => resolve(status));
            res.destroy();
          }
        });
        res.on('end', () => settle(() => resolve(status)));
        // Cut while the body was still coming: the receiver has not finished answering.
        res.on('error', (err) => settle(() => reject(err)));
        res.on('close', () => settle(() => (res.complete ? resolve(status) : reject(new Error('the answer was cut off')))));
      };
      const req = (https ? httpsRequest : httpRequest)(target, { method: 'POST', agent, headers: { ...headers, 'Content-Length': String(Buffer.byteLength(body)) } }, onAnswer);
      req.on('error', (err) => settle(() => reject(err)));
      abort = () => {
        if (settled) return;
        settle(() => reject(new Error('aborted')));
        req.destroy();
      };
      req.end(body);
    });
    return { answer, abort: () => abort() };
  }

  /** Closes the agents of endpoints not in `keep` (left the config, or their URL changed). */
  retain(keep: ReadonlyMap<string, { url: string; maxConcurrency: number }>): void {
    for (const [name, a] of this.agents) {
      const e = keep.get(name);
      if (!e || new URL(e.url).origin !== a.origin || e.maxConcurrency !== a.maxSockets) {
        a.agent.destroy();
        this.agents.delete(name);
      }
    }
  }

  close(): void {
    for (const a of this.agents.values()) a.agent.destroy();
    this.agents.clear();
  }

  private agentFor(endpoint: string, target: URL, https: boolean, maxSockets: number): HttpAgent {
    const known = this.agents.get(endpoint);
    if (known && known.origin === target.origin && known.maxSockets === maxSockets) return known.agent;
    known?.agent.destroy();
    const options = { keepAlive: true, maxSockets, maxFreeSockets: maxSockets, timeout: IDLE_SOCKET_MS, scheduling: 'lifo' as const };
    const agent = https ? new HttpsAgent(options) : new HttpAgent(options);
    this.agents.set(endpoint, { origin: target.origin, maxSockets, agent });
    return agent;
  }
}
