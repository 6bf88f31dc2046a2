/**
 * The Drover agent: runs on an instance, holds one WebSocket to a Drover server (protocol.ts),
 * and reports on the instance. `AgentRunner` only wires the parts together; each part states
 * its own contract in its module (README.md shows how they connect):
 * - connection.ts: reaching a server and staying connected (servers in turn, backoff, TLS, HA
 *   leader hints, server silence, welcome, refusals and giving up).
 * - health-reporter.ts: `health` every interval while the instance is healthy.
 * - drain-runner.ts: the drain command, `drainAck`, automatic extensions, cancellation.
 * - notice-watcher.ts: termination notices (a watcher chosen by the config, none with `metadata:
 *   hetzner`; and their sending).
 * - self-forwarder.ts: the self-service socket's requests (self-socket.ts) and their answers.
 *
 * Contracts of the whole:
 * - Sending. Every part sends through the connection, which delivers only while welcomed;
 *   what must not be lost (a notice, a drain ack) is kept and sent again after the next welcome.
 * - Welcome. After each welcome the pending notice is sent, then the pending drain ack, then
 *   health reporting (re)starts with the welcome's interval. When the connection is lost,
 *   health reporting stops and every forwarded request waiting for an answer gets `ok:false`.
 * - Giving up. When the connection gives up, the agent ends (as for `stop()`, but without a
 *   goodbye) and `done` settles with exit code 2 (credential refused) or 3 (instance deleted).
 * - Credential (bootstrap.ts). The config's credential, or the one saved in `credentialFile`, is
 *   used at once. Without either, the agent exchanges its `bootstrapToken` first (the workload
 *   and the self socket start meanwhile; the connection starts once the credential is there);
 *   when the server refuses the token, the agent ends without a goodbye and `done` settles with
 *   exit code 4.
 * - Workload. `command` is started at once, supervised, restarted with backoff when it exits, and
 *   stopped (SIGTERM, SIGKILL after a grace) by `stop()`. Its output goes to the agent's.
 * - Self-service socket. With `selfSocket`, the agent listens there (before the workload starts,
 *   so that it can use the socket at once) and every child gets
 *   DROVER_AGENT_SOCKET=<absolute path>; without it, children get no DROVER_AGENT_SOCKET.
 * - Stop. `stop(reason)` sends `goodbye`, closes the connection with 1000, stops the workload,
 *   closes the self-service socket (removing its file), removes the pid file, and settles `done`
 *   with exit code 0. Signal handling is the caller's (the CLI calls `stop()` on SIGTERM/SIGINT).
 * - Every child process carries DROVER_INSTANCE_ID. All time comes from the injected clock.
 */
import { resolve as resolvePath } from 'node:path';
import type { WebSocket } from 'ws';
import { SystemClock, type Clock } from '../clock/index.js';
import { errorMessage } from '../errors/index.js';
import type { Logger } from '../logging/index.js';
import { CredentialSource, knownCredential } from './bootstrap.js';
import type { AgentConfig } from './config.js';
import { ServerConnection, type Refusal, type SessionMessage } from './connection.js';
import { DrainRunner } from './drain-runner.js';
import { HealthReporter } from './health-reporter.js';
import { holdProcessOpen, type ProcessHold } from './keep-alive.js';
import { NoticeSender, noticeWatcherFor, type NoticeWatcher } from './notice-watcher.js';
import { removePidFile, writePidFile } from './pid-file.js';
import { Supervisor } from './process.js';
import type { AgentMessage } from './protocol.js';
import { SelfForwarder } from './self-forwarder.js';
import { listenSelfSocket, SELF_SOCKET_ENV, type SelfSocket } from './self-socket.js';

export { agentUrl } from './connection.js';

export interface AgentOptions {
  logger: Logger;
  clock?: Clock;
  /** The WebSocket client class (tests may pass a wrapper). Default: `ws`'s WebSocket. */
  WebSocketImpl?: typeof WebSocket;
  /** First reconnect delay; doubles per failed attempt up to `reconnectMaxMs`. Default 250. */
  reconnectInitialMs?: number;
  /** Default 10 000. */
  reconnectMaxMs?: number;
  /** Consecutive refusals (401/403/close 4403) before giving up. Default 8. */
  maxRefusals?: number;
  /** Default 1 000. */
  noticePollMs?: number;
  /** How often the EC2 watcher reads rebalance recommendations. Default 5 000. */
  rebalancePollMs?: number;
  /** Bootstrap exchange retries: first delay and cap. Default 500 and 30 000. */
  bootstrapRetryInitialMs?: number;
  bootstrapRetryMaxMs?: number;
  /**
   * A connection with nothing heard from the server this long is dropped. Default
   * max(2.5 × interval, 3 s): below a new leader's grace (missedHealthThreshold × interval, 3 by
   * default), so agents of a leader that hangs (SIGSTOP) reach the new one in time.
   */
  serverSilenceMs?: number;
  /** Workload: SIGTERM → SIGKILL grace at stop. Default 8 000 (below the local provider's 10 s). */
  workloadStopGraceMs?: number;
  /** Workload restart backoff: first delay and cap. Default 1 000 and 30 000. */
  workloadRestartInitialMs?: number;
  workloadRestartMaxMs?: number;
  /** How long a forwarded self-service request (protect, unprotect, extend) waits for the server's result. Default 10 000. */
  selfRequestTimeoutMs?: number;
  /** A cancelled drain's command: SIGTERM → SIGKILL grace. Default 5 000. */
  drainCancelGraceMs?: number;
  /** Random source for jitter. Default Math.random. */
  random?: () => number;
  /**
   * Keep the Node process alive until the agent ends (default true). The clock's timers do not
   * hold the process open, so without this an agent waiting to reconnect, with no workload,
   * would let its process exit.
   */
  keepAlive?: boolean;
}

/** How the agent ended. */
export interface AgentExit {
  /** 0 after stop(); 2 when the credential was refused (401); 3 when the instance is deleted (403); 4 when no credential could be obtained (bootstrap refused). */
  exitCode: number;
  reason: string;
}

export interface Agent {
  /** Says goodbye, closes the connection, stops the workload. Idempotent. */
  stop(reason?: string): Promise<void>;
  /** Settles once the agent has ended, by stop() or by giving up. Never rejects. */
  readonly done: Promise<AgentExit>;
}

export const EXIT_CREDENTIAL_REFUSED = 2;
export const EXIT_INSTANCE_DELETED = 3;
export const EXIT_BOOTSTRAP_REFUSED = 4;

const GIVE_UP_EXITS: Record<Refusal, AgentExit> = {
  credential: { exitCode: EXIT_CREDENTIAL_REFUSED, reason: 'credential refused by the server' },
  deleted: { exitCode: EXIT_INSTANCE_DELETED, reason: 'instance deleted or unknown to the server' },
};
const CONNECTION_LOST = 'the connection to the Drover server was lost before it answered';

/** Starts an agent for `config`. It runs until `stop()` or until it gives up (see `done`). */
export function runAgent(config: AgentConfig, options: AgentOptions): Agent {
  return new AgentRunner(config, options);
}

/** The environment of every child: the agent's, with the instance id and (only) this agent's socket. */
function childEnv(instanceId: string, socketPath: string | undefined): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = { ...process.env, DROVER_INSTANCE_ID: instanceId };
  delete env[SELF_SOCKET_ENV];
  if (socketPath !== undefined) env[SELF_SOCKET_ENV] = socketPath;
  return env;
}

class AgentRunner implements Agent {
  readonly done: Promise<AgentExit>;
  private resolveDone: (exit: AgentExit) => void = () => undefined;
  private readonly log: Logger;
  private readonly connection: ServerConnection;
  private readonly health: HealthReporter;
  private readonly drain: DrainRunner;
  private readonly forwarder: SelfForwarder;
  private readonly notices: NoticeSender;
  private readonly noticeWatcher: NoticeWatcher | undefined;
  private readonly workload: Supervisor | undefined;
  private readonly selfSocket: SelfSocket | undefined;
  private readonly hold: ProcessHold | undefined;
  private readonly credentialSource: CredentialSource | undefined;
  private ending: Promise<void> | undefined;

  constructor(
    private readonly config: AgentConfig,
    options: AgentOptions,
  ) {
    const clock = options.clock ?? new SystemClock();
    const logger = options.logger;
    const random = options.random ?? Math.random;
    const socketPath = config.selfSocket === undefined ? undefined : resolvePath(config.selfSocket);
    const env = childEnv(config.instanceId, socketPath);
    const send = (msg: AgentMessage): boolean => this.connection.send(msg);
    this.log = logger;
    this.done = new Promise<AgentExit>((resolve) => {
      this.resolveDone = resolve;
    });

    this.connection = new ServerConnection({
      config,
      clock,
      logger,
      random,
      events: {
        welcomed: (intervalMs) => this.onWelcome(intervalMs),
        message: (msg) => this.onMessage(msg),
        disconnected: () => this.onDisconnected(),
        gaveUp: (refusal) => void this.end(GIVE_UP_EXITS[refusal], false),
      },
      WebSocketImpl: options.WebSocketImpl,
      reconnectInitialMs: options.reconnectInitialMs,
      reconnectMaxMs: options.reconnectMaxMs,
      maxRefusals: options.maxRefusals,
      serverSilenceMs: options.serverSilenceMs,
    });
    this.forwarder = new SelfForwarder({
      send,
      clock,
      logger,
      timeoutMs: options.selfRequestTimeoutMs ?? 10_000,
      isConnected: () => this.connection.connected,
      drainStatus: () => this.drain.status,
    });
    this.drain = new DrainRunner({
      drainCommand: config.drainCommand,
      env,
      clock,
      logger,
      send,
      requestExtension: (byMs) => this.forwarder.forward({ type: 'extend', byMs }),
      intervalMs: () => this.connection.intervalMs,
      cancelGraceMs: options.drainCancelGraceMs ?? 5_000,
    });
    this.notices = new NoticeSender({ send, logger });
    this.noticeWatcher = noticeWatcherFor(config, { clock, logger, pollMs: options.noticePollMs, rebalancePollMs: options.rebalancePollMs });
    this.workload = config.command
      ? new Supervisor({
          argv: config.command,
          env,
          clock,
          logger,
          restartInitialMs: options.workloadRestartInitialMs ?? 1_000,
          restartMaxMs: options.workloadRestartMaxMs ?? 30_000,
          stableAfterMs: 60_000,
          stopGraceMs: options.workloadStopGraceMs ?? 8_000,
          random,
        })
      : undefined;
    this.health = new HealthReporter({ send, clock, logger, workload: this.workload, healthCommand: config.healthCommand, env });

    if (options.keepAlive !== false) this.hold = holdProcessOpen();
    if (config.pidFile) writePidFile(config.pidFile, logger);
    // Before the workload starts, so that it can use the socket at once.
    if (socketPath !== undefined) this.selfSocket = listenSelfSocket({ path: socketPath, logger, handle: (req) => this.forwarder.handle(req) });
    this.workload?.start();
    logger.info({ instanceId: config.instanceId, servers: config.servers, workload: Boolean(config.command) }, 'agent starting');
    this.noticeWatcher?.start(
      (terminateAt) => this.notices.report(terminateAt),
      (noticeTime) => this.notices.reportRebalance(noticeTime),
    );
    const credential = knownCredential(config, logger);
    if (credential !== undefined) {
      this.connection.start(credential);
    } else {
      this.credentialSource = new CredentialSource({
        config,
        clock,
        logger,
        random,
        retryInitialMs: options.bootstrapRetryInitialMs,
        retryMaxMs: options.bootstrapRetryMaxMs,
      });
      void this.connectOnceCredentialObtained(this.credentialSource);
    }
  }

  /** Exchanges the bootstrap token, then connects; a refusal ends the agent (exit 4). */
  private async connectOnceCredentialObtained(source: CredentialSource): Promise<void> {
    const outcome = await source.obtain();
    if (this.ending || 'stopped' in outcome) return;
    if ('refused' in outcome) {
      void this.end({ exitCode: EXIT_BOOTSTRAP_REFUSED, reason: outcome.refused }, false);
      return;
    }
    this.connection.start(outcome.credential);
  }

  stop(reason = 'agent stopping'): Promise<void> {
    return this.end({ exitCode: 0, reason }, true);
  }

  private onWelcome(intervalMs: number): void {
    this.notices.flush();
    this.drain.sendPendingAck();
    this.health.start(intervalMs);
  }

  private onDisconnected(): void {
    this.health.stop();
    this.forwarder.failAll(CONNECTION_LOST);
  }

  private onMessage(msg: SessionMessage): void {
    switch (msg.type) {
      case 'drain':
        this.drain.start(msg.reason, msg.deadline);
        return;
      case 'drainCancelled':
        this.drain.cancel();
        return;
      case 'result':
        if (msg.drainDeadline !== undefined) this.drain.takeDeadline(msg.drainDeadline);
        this.forwarder.onResult(msg);
        return;
      case 'error':
        this.log.warn({ message: msg.message }, 'server reported an error');
        return;
    }
  }

  /** Ends the agent once: every part stops, then the connection, drain command, workload and socket close in that order. */
  private end(exit: AgentExit, sayGoodbye: boolean): Promise<void> {
    if (this.ending) return this.ending;
    this.ending = (async () => {
      this.log.info({ reason: exit.reason, exitCode: exit.exitCode }, 'agent stopping');
      this.credentialSource?.stop();
      this.noticeWatcher?.stop();
      this.health.stop();
      this.drain.stop();
      this.forwarder.stop();
      await this.connection.close(sayGoodbye ? exit.reason : undefined);
      this.drain.killCommand();
      await this.workload?.stop();
      await this.selfSocket?.close();
      if (this.config.pidFile) removePidFile(this.config.pidFile);
      this.log.info({ exitCode: exit.exitCode }, 'agent stopped');
    })()
      .catch((err: unknown) => this.log.error({ err: errorMessage(err) }, 'agent stop failed'))
      .finally(() => {
        this.hold?.release();
        this.resolveDone(exit);
      });
    return this.ending;
  }
}
