/**
 * HTTPS requests for TLS tests: each on a fresh connection (so a rotated certificate is seen),
 * verified against the CA the test gives (never unverified), optionally with a client
 * certificate; the answer carries the certificate the server presented. Also a logger that
 * records pino's JSON lines, so tests can wait for a line.
 */
import { EventEmitter } from 'node:events';
import { request } from 'node:https';
import { Writable } from 'node:stream';
import type { TLSSocket } from 'node:tls';
import { pino, type Logger as PinoLogger } from 'pino';

export interface TlsRequestOptions {
  /** PEM of the CA(s) to verify the server against; default: the system's CAs. */
  ca?: string | Buffer;
  cert?: Buffer;
  key?: Buffer;
  method?: string;
  token?: string;
  body?: unknown;
}

export interface TlsResponse<T = unknown> {
  status: number;
  body: T;
  /** SHA-256 fingerprint of the certificate the server presented. */
  fingerprint: string;
}

export function httpsCall<T = unknown>(url: string, options: TlsRequestOptions = {}): Promise<TlsResponse<T>> {
  const body = options.body === undefined ? undefined : JSON.stringify(options.body);
  return new Promise((resolve, reject) => {
    const req = request(
      url,
      {
        method: options.method ?? 'GET',
        // A new connection (and TLS handshake) for every request.
        agent: false,
        timeout: 5_000,
        ...(options.ca !== undefined ? { ca: options.ca } : {}),
        ...(options.cert !== undefined ? { cert: options.cert } : {}),
        ...(options.key !== undefined ? { key: options.key } : {}),
        headers: {
          ...(options.token ? { Authorization: `Bearer ${options.token}` } : {}),
          ...(body !== undefined ? { 'Content-Type': 'application/json' } : {}),
        },
      },
      (res) => {
        const fingerprint = (res.socket as TLSSocket).getPeerCertificate().fingerprint256;
        let text = '';
        res.setEncoding('utf8');
        res.on('data', (d: string) => (text += d));
        res.on('end', () => {
          let parsed: unknown = text;
          try {
            parsed = JSON.parse(text);
          } catch {
            // not JSON
          }
          resolve({ status: res.statusCode ?? 0, body: parsed as T, fingerprint });
        });
      },
    );
    req.on('timeout', () => req.destroy(new Error('timed out')));
    req.on('error', reject);
    req.end(body);
  });
}

export interface LogRecord {
  level: number;
  msg: string;
  [field: string]: unknown;
}

/** A pino logger whose lines are kept (parsed) and can be awaited. */
export class RecordingLog extends EventEmitter {
  readonly records: LogRecord[] = [];
  readonly logger: PinoLogger;

  constructor() {
    super();
    const sink = new Writable({
      write: (chunk: Buffer, _enc, done) => {
        for (const line of chunk.toString('utf8').split('\n')) {
          if (!line.trim()) continue;
          const record = JSON.parse(line) as LogRecord;
          this.records.push(record);
          this.emit('record', record);
        }
        done();
      },
    });
    this.logger = pino({ level: 'debug' }, sink);
  }

  /** Resolves with the first line (already logged or to come) with message `msg` that `match` accepts. */
  waitFor(msg: string, match: (r: LogRecord) => boolean = () => true): Promise<LogRecord> {
    const seen = this.records.find((r) => r.msg === msg && match(r));
    if (seen) return Promise.resolve(seen);
    return new Promise((resolve) => {
      const on = (r: LogRecord): void => {
        if (r.msg !== msg || !match(r)) return;
        this.off('record', on);
        resolve(r);
      };
      this.on('record', on);
    });
  }
}
