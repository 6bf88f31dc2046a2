/**
 * The server's TLS (`server.tls`): the certificate and key it serves HTTPS and WSS with, the CA
 * its clients must present certificates from (mutual TLS), and what agents are told to verify
 * the server against.
 *
 * - Every file is read and checked at start; a problem is an error naming the setting and the
 *   file ("reading server.tls.cert /etc/drover/tls.crt: ENOENT: ..."), so a server with TLS
 *   configured never starts without it.
 * - The files are watched (their folders, so that replacing a file by rename, or Kubernetes'
 *   symlink swap of a mounted secret, is seen) and re-read, debounced, after any change; and
 *   re-read every `pollMs` besides, because a watch can miss events (a folder replaced as a
 *   whole, network file systems). A new set that checks out replaces the HTTPS server's secure
 *   context: new connections get the new certificate, open ones keep theirs, nothing restarts.
 *   A set that does not check out (a key that does not match, a half-written file) is logged
 *   and the previous one stays in force.
 * - Paths are taken as given (relative ones from the working directory, as `server.dataDir`).
 */
import { createPrivateKey, type KeyObject, type X509Certificate } from 'node:crypto';
import { watch, type FSWatcher } from 'node:fs';
import type { ServerOptions as HttpsServerOptions } from 'node:https';
import type { Server as NetServer } from 'node:net';
import { dirname, resolve } from 'node:path';
import { Server as TlsServer, createSecureContext, type SecureContextOptions } from 'node:tls';
import type { Clock, TimerHandle } from '../clock/index.js';
import type { DroverConfig } from '../config/index.js';
import { InternalError, SettingError, doing, errorMessage } from '../errors/index.js';
import type { Logger } from '../logging/index.js';
import { parseCertificates, readSettingFile } from '../util/pem.js';

export type ServerTlsConfig = NonNullable<DroverConfig['server']['tls']>;

/** userData keys through which instances learn how to reach the servers over TLS. */
export const SERVER_CA_USERDATA = 'DROVER_SERVER_CA';
export const AGENT_CERT_USERDATA = 'DROVER_AGENT_CERT';
export const AGENT_KEY_USERDATA = 'DROVER_AGENT_KEY';

/** One consistent set of the files' contents, checked. */
export interface ServerTlsMaterial {
  cert: Buffer;
  key: Buffer;
  /** CA certificates client certificates must chain to; absent without mutual TLS. */
  clientCa: Buffer | undefined;
  /** PEM text of `server.tls.ca`, handed to agents. */
  agentCa: string | undefined;
  /** The serving certificate (the first of the chain). */
  leaf: X509Certificate;
}

function parseKey(setting: string, path: string, pem: Buffer): KeyObject {
  try {
    return createPrivateKey(pem);
  } catch (err) {
    // An encrypted key lands here too: Drover has no passphrase to give.
    throw new SettingError(doing(`reading ${setting} ${path}`, err), err);
  }
}

/** Checks that `keyPath` holds the private key of the first certificate in `certPath`; returns that certificate. */
function checkPair(certSetting: string, certPath: string, cert: Buffer, keySetting: string, keyPath: string, key: Buffer): X509Certificate {
  const [leaf] = parseCertificates(certSetting, certPath, cert);
  if (!leaf.checkPrivateKey(parseKey(keySetting, keyPath, key))) {
    throw new SettingError(`checking ${keySetting} ${keyPath}: it is not the private key of the certificate in ${certSetting} ${certPath}`);
  }
  return leaf;
}

/** Reads and checks every file of `server.tls`. Throws a SettingError naming the setting and file at fault. */
export function readServerTls(config: ServerTlsConfig): ServerTlsMaterial {
  const cert = readSettingFile('server.tls.cert', config.cert);
  const key = readSettingFile('server.tls.key', config.key);
  const leaf = checkPair('server.tls.cert', config.cert, cert, 'server.tls.key', config.key, key);
  let clientCa: Buffer | undefined;
  if (config.clientCa !== undefined) {
    clientCa = readSettingFile('server.tls.clientCa', config.clientCa);
    parseCertificates('server.tls.clientCa', config.clientCa, clientCa);
  }
  let agentCa: string | undefined;
  if (config.ca !== undefined) {
    agentCa = readSettingFile('server.tls.ca', config.ca).toString('utf8');
    parseCertificates('server.tls.ca', config.ca, agentCa);
  }
  if (config.agentCert !== undefined && config.agentKey !== undefined) {
    checkPair('server.tls.agentCert', config.agentCert, readSettingFile('server.tls.agentCert', config.agentCert), 'server.tls.agentKey', config.agentKey, readSettingFile('server.tls.agentKey', config.agentKey));
  }
  const material: ServerTlsMaterial = { cert, key, clientCa, agentCa, leaf };
  try {
    // What the HTTPS server will do with them: catches what the checks above do not (an
    // unsupported key type, a chain OpenSSL refuses).
    createSecureContext(secureContextOptions(material));
  } catch (err) {
    throw new SettingError(doing(`loading server.tls.cert ${config.cert} and server.tls.key ${config.key}`, err), err);
  }
  return material;
}

/** The secure context: given at start and again, whole, at every rotation (setSecureContext). */
function secureContextOptions(m: ServerTlsMaterial): SecureContextOptions {
  return { cert: m.cert, key: m.key, minVersion: 'TLSv1.2', ...(m.clientCa ? { ca: m.clientCa } : {}) };
}

/** Options for an HTTPS server serving `material`; with a client CA, a client without a certificate it signed fails the handshake. */
export function httpsServerOptions(material: ServerTlsMaterial): HttpsServerOptions {
  return {
    ...secureContextOptions(material),
    ...(material.clientCa ? { requestCert: true, rejectUnauthorized: true } : { requestCert: false }),
  };
}

function sameMaterial(a: ServerTlsMaterial, b: ServerTlsMaterial): boolean {
  const eq = (x: Buffer | undefined, y: Buffer | undefined): boolean => (x === undefined ? y === undefined : y !== undefined && x.equals(y));
  return eq(a.cert, b.cert) && eq(a.key, b.key) && eq(a.clientCa, b.clientCa) && a.agentCa === b.agentCa;
}

export interface ServerTlsOptions {
  clock: Clock;
  logger: Logger;
  /** Quiet time after a file event before the files are re-read (a rotation writes several files). Default 500. */
  debounceMs?: number;
  /** The files are also re-read this often (a watch can miss events). 0 = only on events. Default 5 min. */
  pollMs?: number;
}

/**
 * The server's TLS material, kept current. `load` reads and checks the files (throwing on a
 * problem); `watch` starts applying changes to a listening HTTPS server.
 */
export class ServerTls {
  private material: ServerTlsMaterial;
  private server: TlsServer | undefined;
  private watchers: FSWatcher[] = [];
  private debounce: TimerHandle | undefined;
  private poll: TimerHandle | undefined;
  /** The error of the last rejected set, so that one bad rotation is logged once, not per event. */
  private lastProblem: string | undefined;
  private closed = false;

  private constructor(
    private readonly config: ServerTlsConfig,
    private readonly options: ServerTlsOptions,
  ) {
    this.material = readServerTls(config);
    this.logLoaded('server certificate loaded');
    if (config.clientCa !== undefined && config.agentCert === undefined) {
      this.options.logger.warn({ clientCa: config.clientCa }, 'server.tls.clientCa is set without server.tls.agentCert: agents need client certificates from their own config to connect');
    }
  }

  /** Reads and checks the files of `config`; throws a SettingError naming the setting and file at fault. */
  static load(config: ServerTlsConfig, options: ServerTlsOptions): ServerTls {
    return new ServerTls(config, options);
  }

  /** Options for the HTTPS server (Fastify's `https`), from the material in force. */
  httpsOptions(): HttpsServerOptions {
    return httpsServerOptions(this.material);
  }

  /** SHA-256 fingerprint of the certificate in force. */
  get fingerprint(): string {
    return this.material.leaf.fingerprint256;
  }

  /**
   * What instances are given to reach the servers: the CA to verify them against
   * (DROVER_SERVER_CA, PEM text) and, when configured, the client certificate and key files
   * (DROVER_AGENT_CERT, DROVER_AGENT_KEY, absolute paths on this machine: meaningful to the
   * local provider, whose instances share it; the agent re-reads them at each connection).
   */
  agentUserData(): Record<string, string> {
    const data: Record<string, string> = {};
    if (this.material.agentCa !== undefined) data[SERVER_CA_USERDATA] = this.material.agentCa;
    if (this.config.agentCert !== undefined && this.config.agentKey !== undefined) {
      data[AGENT_CERT_USERDATA] = resolve(this.config.agentCert);
      data[AGENT_KEY_USERDATA] = resolve(this.config.agentKey);
    }
    return data;
  }

  /** Starts applying changed files to `server` (the listening HTTPS server). */
  watch(server: NetServer): void {
    // Only the server built from httpsOptions() may be passed: anything else is a caller's bug.
    if (!(server instanceof TlsServer)) throw new InternalError('watching server.tls: the admin API server does not serve TLS');
    this.server = server;
    const files = [this.config.cert, this.config.key, this.config.clientCa, this.config.ca, this.config.agentCert, this.config.agentKey].filter((f): f is string => f !== undefined);
    for (const dir of new Set(files.map((f) => dirname(resolve(f))))) {
      try {
        // Any event in the folder: a secret mount swaps a symlinked folder, not the files by
        // name. A re-read that finds the same bytes changes nothing.
        const watcher = watch(dir, { persistent: false }, () => this.scheduleReload());
        watcher.on('error', (err) => this.options.logger.warn({ dir, err: errorMessage(err) }, 'watching a server.tls folder failed; relying on the periodic re-read'));
        this.watchers.push(watcher);
      } catch (err) {
        this.options.logger.warn({ dir, err: errorMessage(err) }, 'watching a server.tls folder failed; relying on the periodic re-read');
      }
    }
    this.schedulePoll();
  }

  /**
   * Re-reads the files now. A changed set that checks out is put in force (true); an unchanged
   * one changes nothing (false); a set that does not check out is logged and the previous one
   * stays (false).
   */
  reload(): boolean {
    if (this.closed) return false;
    let next: ServerTlsMaterial;
    try {
      next = readServerTls(this.config);
    } catch (err) {
      const problem = errorMessage(err);
      if (problem !== this.lastProblem) this.options.logger.error({ problem, fingerprint: this.fingerprint }, 'new server.tls files rejected; the previous certificate stays in force');
      this.lastProblem = problem;
      return false;
    }
    this.lastProblem = undefined;
    if (sameMaterial(next, this.material)) return false;
    if (this.server) {
      try {
        this.server.setSecureContext(secureContextOptions(next));
      } catch (err) {
        this.options.logger.error({ problem: errorMessage(err), fingerprint: this.fingerprint }, 'new server.tls files rejected; the previous certificate stays in force');
        return false;
      }
    }
    this.material = next;
    this.logLoaded('server certificate reloaded');
    return true;
  }

  /** Stops watching. */
  close(): void {
    this.closed = true;
    this.debounce?.cancel();
    this.poll?.cancel();
    for (const w of this.watchers.splice(0)) w.close();
  }

  private scheduleReload(): void {
    if (this.closed) return;
    const { clock } = this.options;
    this.debounce?.cancel();
    this.debounce = clock.schedule(clock.nowMs() + (this.options.debounceMs ?? 500), () => {
      this.debounce = undefined;
      this.reload();
    });
  }

  private schedulePoll(): void {
    const pollMs = this.options.pollMs ?? 300_000;
    if (this.closed || pollMs <= 0) return;
    const { clock } = this.options;
    this.poll = clock.schedule(clock.nowMs() + pollMs, () => {
      this.reload();
      this.schedulePoll();
    });
  }

  private logLoaded(message: string): void {
    const { leaf } = this.material;
    const nowMs = this.options.clock.nowMs();
    const validFrom = new Date(leaf.validFrom);
    const validTo = new Date(leaf.validTo);
    const fields = { fingerprint: leaf.fingerprint256, subject: leaf.subject, validFrom: validFrom.toISOString(), validTo: validTo.toISOString(), mutualTls: this.material.clientCa !== undefined };
    this.options.logger.info(fields, message);
    // Not refused: clients judge validity themselves; a stale certificate is an operator's
    // problem to see in the logs, not a reason to stop the control plane.
    if (nowMs < validFrom.getTime() || nowMs > validTo.getTime()) this.options.logger.error(fields, 'server certificate is outside its validity period');
  }
}
