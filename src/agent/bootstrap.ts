/**
 * Where the agent's credential comes from: the config (`credential`), the file the agent saved it
 * in (`credentialFile`), or — on the first start of an instance whose user data others can read —
 * the server, in exchange for a one-time bootstrap token (protocol.ts, "Bootstrap").
 *
 * Contracts:
 * - Known at once. `knownCredential(config)` is the config's credential, else the credential
 *   file's content (a file others may read is made 0600 and warned about); then no exchange.
 * - Exchange. Otherwise, with `bootstrapToken`, `obtain()` reads the machine's id (`metadata`
 *   `ec2`: the IMDS instance-id; `hetzner`: the server id from Hetzner Cloud's server metadata,
 *   hetzner-metadata.ts) and posts `{ instanceId, token, providerId }` to `<server>/v1/agent/bootstrap`,
 *   the servers in turn. With `https://` servers, TLS is verified as for the WebSocket
 *   (`serverCa`, else the system's CAs) and the client certificate is presented when configured.
 * - Retries. A network error, a timeout (10 s per request), a 5xx (503: the server does not know
 *   the machine yet, or does not lead), 408 or 429, a metadata read that fails and an answer
 *   that does not validate are retried with exponential backoff and jitter (from 0.5 s, at most
 *   30 s), moving on to the next server. A 503 or 307 naming a leader that is one of the
 *   configured servers sends the next attempt there (a 307 at once); a redirect anywhere else is
 *   not followed — the token goes only to configured servers.
 * - Refusals are final: 401 (token unknown, expired or used), 403 (another machine, or the
 *   instance is deleted), and any other 4xx; `obtain()` then resolves `{ refused }` with the
 *   server's reason, logged as an error. So is the lack of any way to a credential (no credential
 *   file and no token).
 * - Saving. The credential received is written to `credentialFile` (its folder made 0700, the
 *   file 0600, written whole then renamed into place) and used from then on, after restarts too.
 *   A credential that cannot be saved is still used (logged as an error: a restart will not get it
 *   again, the token being spent).
 * - `stop()` ends the attempts: `obtain()` resolves `{ stopped: true }`.
 */
import { chmodSync, mkdirSync, readFileSync, renameSync, statSync, writeFileSync } from 'node:fs';
import { request as httpRequest, type IncomingHttpHeaders } from 'node:http';
import { request as httpsRequest } from 'node:https';
import { dirname } from 'node:path';
import type { Clock, TimerHandle } from '../clock/index.js';
import { errorMessage } from '../errors/index.js';
import type { Logger } from '../logging/index.js';
import { backoffDelayMs } from '../util/backoff.js';
import type { AgentConfig } from './config.js';
import { HetznerMetadataClient, hetznerMetadataEndpoint } from './hetzner-metadata.js';
import { ImdsClient, imdsEndpoint } from './imds.js';
import { AGENT_BOOTSTRAP_PATH, bootstrapAnswerSchema, type BootstrapRequest } from './protocol.js';

/** The longest answer to a bootstrap request the agent reads. */
const MAX_ANSWER_BYTES = 16 * 1024;
/** The longest credential file the agent reads. */
const MAX_CREDENTIAL_BYTES = 4 * 1024;

export type CredentialConfig = Pick<
  AgentConfig,
  'instanceId' | 'servers' | 'credential' | 'credentialFile' | 'bootstrapToken' | 'metadata' | 'imds' | 'hetznerMetadata' | 'serverCa' | 'clientCert' | 'clientKey'
>;

/** How `obtain()` ended. */
export type CredentialOutcome = { credential: string } | { refused: string } | { stopped: true };

export interface CredentialSourceOptions {
  config: CredentialConfig;
  clock: Clock;
  logger: Logger;
  random: () => number;
  /** The machine's id at its cloud (default: with `metadata: ec2` the IMDS instance-id, with `hetzner` the server id). */
  providerId?: () => Promise<string>;
  /** Backoff: the first delay and the cap. Default 500 and 30 000. */
  retryInitialMs?: number;
  retryMaxMs?: number;
  /** Per request. Default 10 000. */
  requestTimeoutMs?: number;
}

/** The credential the agent has without asking the server: the config's, else its file's (undefined: none). */
export function knownCredential(config: Pick<CredentialConfig, 'credential' | 'credentialFile'>, logger: Logger): string | undefined {
  if (config.credential !== undefined) return config.credential;
  if (config.credentialFile === undefined) return undefined;
  return readCredentialFile(config.credentialFile, logger);
}

/** The credential saved in `path`, or undefined when there is none (absent, empty, unreadable). */
export function readCredentialFile(path: string, logger: Logger): string | undefined {
  let text: string;
  try {
    const stat = statSync(path);
    if (stat.size > MAX_CREDENTIAL_BYTES) {
      logger.error({ path, size: stat.size }, 'credential file too large; ignored');
      return undefined;
    }
    if ((stat.mode & 0o077) !== 0) {
      logger.warn({ path, mode: (stat.mode & 0o777).toString(8) }, 'credential file readable by others; made 0600');
      chmodSync(path, 0o600);
    }
    text = readFileSync(path, 'utf8').trim();
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') logger.error({ path, err: errorMessage(err) }, 'reading the credential file failed');
    return undefined;
  }
  return text === '' ? undefined : text;
}

/** Writes the credential to `path` (folder 0700, file 0600), whole or not at all. */
export function saveCredentialFile(path: string, credential: string): void {
  mkdirSync(dirname(path), { recursive: true, mode: 0o700 });
  const partial = `${path}.partial`;
  writeFileSync(partial, `${credential}\n`, { mode: 0o600 });
  chmodSync(partial, 0o600);
  renameSync(partial, path);
}

interface PostAnswer {
  status: number;
  headers: IncomingHttpHeaders;
  text: string;
}

export class CredentialSource {
  private stopped = false;
  private wait: { timer: TimerHandle; resolve: () => void } | undefined;
  private abortRequest: (() => void) | undefined;

  constructor(private readonly options: CredentialSourceOptions) {}

  /** Gets the credential: known at once, or exchanged for the bootstrap token (retrying until refused or stopped). */
  async obtain(): Promise<CredentialOutcome> {
    const { config, logger } = this.options;
    const known = knownCredential(config, logger);
    if (known !== undefined) return { credential: known };
    if (config.bootstrapToken === undefined) {
      const refused = `no credential: ${config.credentialFile ?? 'credentialFile'} holds none and there is no bootstrapToken to obtain one`;
      logger.error({ credentialFile: config.credentialFile }, 'no agent credential and no bootstrap token');
      return { refused };
    }
    return this.exchange(config.bootstrapToken);
  }

  /** Ends the attempts. */
  stop(): void {
    this.stopped = true;
    this.abortRequest?.();
    const wait = this.wait;
    this.wait = undefined;
    wait?.timer.cancel();
    wait?.resolve();
  }

  private async exchange(token: string): Promise<CredentialOutcome> {
    const { config, logger } = this.options;
    const servers = config.servers;
    let serverIndex = 0;
    let failures = 0;
    let hops = 0;
    let providerId: string | undefined;
    logger.info({ servers }, 'exchanging the bootstrap token for the agent credential');
    while (!this.stopped) {
      try {
        providerId ??= await this.readProviderId();
      } catch (err) {
        logger.warn({ err: errorMessage(err), attempt: failures + 1 }, 'reading the machine id for the bootstrap failed; retrying');
        await this.backoff(failures++);
        continue;
      }
      if (this.stopped) break;
      const server = servers[serverIndex % servers.length] ?? '';
      const url = bootstrapUrl(server);
      let answer: PostAnswer;
      try {
        answer = await this.post(url, { instanceId: config.instanceId, token, providerId });
      } catch (err) {
        if (this.stopped) break;
        logger.warn({ url, err: errorMessage(err), attempt: failures + 1 }, 'bootstrap request failed; retrying');
        serverIndex++;
        await this.backoff(failures++);
        continue;
      }
      const { status } = answer;
      if (status === 200) {
        const parsed = bootstrapAnswerSchema.safeParse(parseJson(answer.text));
        if (parsed.success) return { credential: this.keep(parsed.data.credential, url) };
        logger.warn({ url, attempt: failures + 1 }, 'bootstrap answer not understood; retrying');
        serverIndex++;
        await this.backoff(failures++);
        continue;
      }
      const leader = this.configuredIndex(status === 307 || status === 308 ? header(answer.headers, 'location') : header(answer.headers, 'x-drover-leader'), status === 307 || status === 308);
      if ((status === 307 || status === 308) && leader >= 0 && hops < servers.length) {
        hops++;
        serverIndex = leader;
        logger.info({ url, leader: servers[leader] }, 'bootstrap sent on to the leader');
        continue;
      }
      hops = 0;
      if (status === 307 || status === 308 || status >= 500 || status === 408 || status === 429) {
        if ((status === 307 || status === 308) && leader >= 0) logger.warn({ url, status }, 'bootstrap redirected around the servers; retrying after a pause');
        else if (status === 307 || status === 308) logger.warn({ url, status, location: header(answer.headers, 'location') }, 'bootstrap redirected to a server not configured; not following');
        else logger.warn({ url, status, reason: errorOf(answer.text), attempt: failures + 1 }, 'bootstrap not possible yet; retrying');
        serverIndex = status === 503 && leader >= 0 ? leader : serverIndex + 1;
        await this.backoff(failures++);
        continue;
      }
      const reason = errorOf(answer.text) ?? `HTTP ${status}`;
      logger.error({ url, status, reason }, 'bootstrap refused: the agent cannot get its credential');
      return { refused: `bootstrap refused by ${url} (HTTP ${status}): ${reason}` };
    }
    return { stopped: true };
  }

  /** Saves the credential (an error is logged, not thrown: the credential is good) and returns it. */
  private keep(credential: string, url: string): string {
    const { config, logger } = this.options;
    const file = config.credentialFile;
    if (file !== undefined) {
      try {
        saveCredentialFile(file, credential);
      } catch (err) {
        logger.error({ credentialFile: file, err: errorMessage(err) }, 'saving the agent credential failed; it is used from memory only, and a restart cannot obtain it again');
      }
    }
    logger.info({ url, credentialFile: file }, 'agent credential obtained with the bootstrap token');
    return credential;
  }

  private readProviderId(): Promise<string> {
    const { config, clock } = this.options;
    if (this.options.providerId) return this.options.providerId();
    if (config.metadata === 'ec2') return new ImdsClient({ endpoint: imdsEndpoint(config.imds?.endpoint), clock }).instanceId();
    if (config.metadata === 'hetzner') return new HetznerMetadataClient({ endpoint: hetznerMetadataEndpoint(config.hetznerMetadata?.endpoint), clock }).instanceId();
    return Promise.reject(new Error('the agent config names no metadata that gives the machine id (metadata: ec2 or hetzner)'));
  }

  /** The index of the configured server `target` names (a redirect's full URL, or a leader's base URL), or -1. */
  private configuredIndex(target: string | undefined, isRedirect: boolean): number {
    if (!target) return -1;
    const normal = (u: string): string | undefined => {
      try {
        return new URL(u).href.replace(/\/+$/, '');
      } catch {
        return undefined;
      }
    };
    const wanted = normal(target);
    if (wanted === undefined) return -1;
    return this.options.config.servers.findIndex((s) => normal(isRedirect ? bootstrapUrl(s) : s) === wanted);
  }

  private backoff(retry: number): Promise<void> {
    if (this.stopped) return Promise.resolve();
    const { clock, random } = this.options;
    const delayMs = backoffDelayMs({ initialMs: this.options.retryInitialMs ?? 500, maxMs: this.options.retryMaxMs ?? 30_000, jitter: 0.5, mode: 'below' }, retry, random);
    return new Promise((resolve) => {
      const timer = clock.schedule(clock.nowMs() + delayMs, () => {
        this.wait = undefined;
        resolve();
      });
      this.wait = { timer, resolve };
    });
  }

  /** One POST of `body` as JSON to `url`, its answer read up to MAX_ANSWER_BYTES, aborted after the timeout. */
  private post(url: string, body: BootstrapRequest): Promise<PostAnswer> {
    const { clock, config } = this.options;
    const timeoutMs = this.options.requestTimeoutMs ?? 10_000;
    const payload = JSON.stringify(body);
    return new Promise<PostAnswer>((resolve, reject) => {
      const target = new URL(url);
      const https = target.protocol === 'https:';
      let settled = false;
      const deadline: { timer?: TimerHandle } = {};
      const finish = (fn: () => void): void => {
        if (settled) return;
        settled = true;
        deadline.timer?.cancel();
        this.abortRequest = undefined;
        fn();
      };
      const tls = https
        ? {
            rejectUnauthorized: true,
            ...(config.serverCa !== undefined ? { ca: config.serverCa } : {}),
            ...(config.clientCert !== undefined && config.clientKey !== undefined ? { cert: readFileSync(config.clientCert), key: readFileSync(config.clientKey) } : {}),
          }
        : {};
      const req = (https ? httpsRequest : httpRequest)(
        target,
        { method: 'POST', headers: { 'content-type': 'application/json', 'content-length': Buffer.byteLength(payload) }, ...tls },
        (res) => {
          const chunks: Buffer[] = [];
          let size = 0;
          res.on('data', (chunk: Buffer) => {
            size += chunk.length;
            if (size > MAX_ANSWER_BYTES) {
              res.destroy();
              finish(() => reject(new Error(`the answer is longer than ${MAX_ANSWER_BYTES} bytes`)));
              return;
            }
            chunks.push(chunk);
          });
          res.on('end', () => finish(() => resolve({ status: res.statusCode ?? 0, headers: res.headers, text: Buffer.concat(chunks).toString('utf8') })));
          res.on('error', (err) => finish(() => reject(err)));
        },
      );
      deadline.timer = clock.schedule(clock.nowMs() + timeoutMs, () => {
        req.destroy();
        finish(() => reject(new Error(`timed out after ${timeoutMs} ms`)));
      });
      this.abortRequest = () => {
        req.destroy();
        finish(() => reject(new Error('stopped')));
      };
      req.on('error', (err) => finish(() => reject(err)));
      req.end(payload);
    });
  }
}

/** `<server>/v1/agent/bootstrap`, keeping the server URL's path prefix. */
export function bootstrapUrl(server: string): string {
  return `${server.replace(/\/+$/, '')}${AGENT_BOOTSTRAP_PATH}`;
}

function header(headers: IncomingHttpHeaders, name: string): string | undefined {
  const value = headers[name];
  return Array.isArray(value) ? value[0] : value;
}

function parseJson(text: string): unknown {
  try {
    return JSON.parse(text);
  } catch {
    return undefined;
  }
}

/** The `error` of an API error answer, cut short (for logs). */
function errorOf(text: string): string | undefined {
  const raw = parseJson(text);
  const error = raw && typeof raw === 'object' ? (raw as Record<string, unknown>).error : undefined;
  return typeof error === 'string' ? error.slice(0, 300) : undefined;
}
