/**
 * The composition root: reads the config, opens the store, picks the provider and the leader
 * elector, and wires the reconciler, the agent hub, the admin API and the metrics together.
 * `drover server` is a thin shell around `startDroverServer`.
 */
import { chmodSync, mkdirSync, readFileSync } from 'node:fs';
import { isIP } from 'node:net';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { FastifyInstance } from 'fastify';
import type { Logger as PinoLogger } from 'pino';
import { AgentCredentials } from '../agent/credentials.js';
import { Autoscaler } from '../autoscale/index.js';
import { SystemClock, type Clock, type TimerHandle } from '../clock/index.js';
import { ConfigError, ConfigLoader, configuredGroups, type DroverConfig } from '../config/index.js';
import { SettingError, UnavailableError, doing, errorMessage } from '../errors/index.js';
import { DefaultInstanceManager } from '../instances/index.js';
import { EtcdElector, FencedProvider, SingleNodeElector, connectEtcd, type LeaderElector } from '../leader/index.js';
import { DroverMetrics } from '../metrics/index.js';
import { Notifier, auditRouter, loadNotificationSettings, sameSecrets, type NotificationSettings } from '../notifications/index.js';
import { USER_DATA, type AgentBootstrap, type Provider } from '../providers/index.js';
import { SimProvider } from '../providers/sim/index.js';
import { EventType, Reconciler } from '../reconciler/index.js';
import { AgentHub, type SelfRequest, type SelfResult } from '../server/agent-hub.js';
import { BootstrapTokens } from '../server/bootstrap.js';
import { EventBus } from '../server/event-bus.js';
import { HostPolicy, TokenTable } from '../server/auth.js';
import { buildHttpServer, routesOf, type RouteInfo } from '../server/http.js';
import { ServerTls } from '../server/tls.js';
import { auditView } from '../server/views.js';
import { EtcdOperatorState } from '../state/index.js';
import { openLocalDb, type LocalDb } from '../store/index.js';
import { VERSION } from './version.js';

export interface DroverServerOptions {
  configPath: string;
  logger: PinoLogger;
  clock?: Clock;
  /** argv prefix that runs `drover agent` (default: this Node binary on the built CLI). */
  agentCommand?: string[];
  /** Use this provider instead of the one the config names (tests, embedding). */
  provider?: Provider;
  /** Use this elector instead of the one the config names. */
  elector?: LeaderElector;
  /** Observers for embedding and measurement (the benchmarks); they must not throw. */
  hooks?: DroverServerHooks;
}

export interface DroverServerHooks {
  /** A health report was recorded; `sentAt` is the agent's own timestamp of it (ISO), when it sent one. */
  onHealthReport?: (instanceId: string, sentAt: string | undefined) => void;
}

export interface DroverServer {
  /** Base URL of the admin API and agent endpoint. */
  url: string;
  config(): DroverConfig;
  reconciler: Reconciler;
  db: LocalDb;
  elector: LeaderElector;
  /** Every route of the admin API, with the role it needs. */
  routes(): readonly RouteInfo[];
  stop(): Promise<void>;
}

const RETENTION_SWEEP_MS = 3_600_000;
/** How often webhook secret files are re-read (a rotated secret signs from then on). */
export const SECRET_REREAD_MS = 30_000;

/** `host:port` or `[v6]:port` of server.listen. */
function splitListen(listen: string): { host: string; port: number } {
  const colon = listen.lastIndexOf(':');
  const host = listen.slice(0, colon).replace(/^\[(.*)\]$/, '$1');
  return { host, port: Number(listen.slice(colon + 1)) };
}

/** Whether a listen host is reachable from this machine only. */
function isLoopback(host: string): boolean {
  return host === 'localhost' || host === '::1' || (isIP(host) === 4 && host.startsWith('127.'));
}

/** The built CLI entry next to this module (dist/cli/main.js when running from dist). */
export function defaultAgentCommand(): string[] {
  return [process.execPath, fileURLToPath(new URL('../cli/main.js', import.meta.url)), 'agent'];
}

type ManagedProvider = Provider & { start?(): void; close?(): Promise<void> | void };

async function providerFor(config: DroverConfig, dataDir: string, clock: Clock, logger: PinoLogger, agentCommand: string[], mayMutate: () => boolean): Promise<ManagedProvider> {
  const p = config.provider;
  if (p.kind === 'sim') {
    return new SimProvider({ clock, createLatencyMs: p.createLatency, deleteLatencyMs: p.deleteLatency, maxCallsPerSecond: p.maxCallsPerSecond });
  }
  if (p.kind === 'aws') {
    const { AwsProvider, createEc2Client } = await import('../providers/aws/index.js');
    const client = createEc2Client({ ...(p.region ? { region: p.region } : {}), ...(p.endpoint ? { endpoint: p.endpoint } : {}), maxAttempts: p.sdkMaxAttempts, requestTimeoutMs: p.callTimeout });
    // Refuse to start without a region rather than fail every call later.
    try {
      await client.config.region();
    } catch (err) {
      throw new SettingError(doing('resolving the AWS region (provider.region, AWS_REGION or the shared config file)', err), err);
    }
    return new AwsProvider({ client, clock, logger: logger.child({ component: 'aws-provider' }), notFoundGraceMs: p.notFoundGrace, ...(config.agent.install ? { agentInstall: config.agent.install } : {}) });
  }
  if (p.kind === 'hetzner') {
    const { HcloudClient, HetznerProvider } = await import('../providers/hetzner/index.js');
    const token = hetznerToken(p.tokenFile);
    const endpoint = p.endpoint ?? process.env.HCLOUD_ENDPOINT ?? 'https://api.hetzner.cloud/v1';
    const client = new HcloudClient({ endpoint, token, timeoutMs: p.callTimeout });
    return new HetznerProvider({ client, clock, logger: logger.child({ component: 'hetzner-provider' }), ...(config.agent.install ? { agentInstall: config.agent.install } : {}) });
  }
  const { LocalProvider } = await import('../providers/local/index.js');
  return new LocalProvider({
    stateDir: resolve(p.stateDir ?? join(dataDir, 'local')),
    agentCommand,
    killGracePeriodMs: p.killGracePeriod,
    clock,
    logger: logger.child({ component: 'local-provider' }),
    // Replicas may share the state folder (one "cloud"): only the shard leader changes it.
    mayMutate,
  });
}

/**
 * What a new instance's agent is told (the create's userData, keys in `USER_DATA`): the servers,
 * and its credential — or, for a provider whose user data others can read (`agentBootstrap:
 * 'token'`), its instance id and a one-time bootstrap token to exchange for it — and the TLS
 * material agents need.
 */
export function agentUserData(
  mode: AgentBootstrap,
  instanceId: string,
  parts: { servers: string; credentials: AgentCredentials; bootstrap: BootstrapTokens; tls: ServerTls | null },
): Record<string, string> {
  const secret: Record<string, string> =
    mode === 'token'
      ? { [USER_DATA.instanceId]: instanceId, [USER_DATA.bootstrapToken]: parts.bootstrap.issue(instanceId) }
      : { [USER_DATA.agentCredential]: parts.credentials.issue(instanceId) };
  return { [USER_DATA.server]: parts.servers, ...secret, ...parts.tls?.agentUserData() };
}

/** The Hetzner API token: from `provider.tokenFile`, else HCLOUD_TOKEN. Refuses to start without one. */
function hetznerToken(tokenFile: string | undefined): string {
  if (tokenFile) {
    let text: string;
    try {
      text = readFileSync(tokenFile, 'utf8').trim();
    } catch (err) {
      throw new SettingError(doing(`reading provider.tokenFile ${tokenFile}`, err), err);
    }
    if (text.length === 0) throw new SettingError(`reading provider.tokenFile ${tokenFile}: the file is empty`);
    return text;
  }
  const env = process.env.HCLOUD_TOKEN?.trim();
  if (!env) throw new SettingError('starting the Hetzner provider: no API token (set provider.tokenFile or HCLOUD_TOKEN)');
  return env;
}

/** Serves a workload's request (through its agent) with the operator actions, as the instance itself. */
async function selfService(reconciler: Reconciler, clock: Clock, instanceId: string, request: SelfRequest): Promise<SelfResult> {
  const actor = `workload:${instanceId}`;
  switch (request.type) {
    case 'protect': {
      const r = await reconciler.operator.protect(instanceId, new Date(clock.nowMs() + request.forMs), actor);
      return { ok: true, message: `protected until ${r.protectedUntil.toISOString()}`, protectedUntil: r.protectedUntil.toISOString() };
    }
    case 'unprotect':
      await reconciler.operator.unprotect(instanceId, actor);
      return { ok: true, message: 'protection removed', protectedUntil: null };
    case 'launchHook': {
      const r = await reconciler.operator.completeLaunchHook(instanceId, request.result, actor);
      return { ok: true, message: r.result === 'continue' ? 'launch hook completed: in service once healthy' : 'launch hook abandoned: this instance is replaced' };
    }
    case 'extend': {
      const r = await reconciler.operator.extendDrain(instanceId, request.byMs, actor);
      return { ok: true, message: r.capped ? `drain deadline ${r.drainDeadline.toISOString()} (capped)` : `drain deadline ${r.drainDeadline.toISOString()}`, drainDeadline: r.drainDeadline.toISOString() };
    }
  }
}

export async function startDroverServer(options: DroverServerOptions): Promise<DroverServer> {
  const clock = options.clock ?? new SystemClock();
  const logger = options.logger;
  const configLoader = ConfigLoader.fromFile(options.configPath, { clock });
  const config = configLoader.getCurrent();
  const server = config.server;
  const dataDir = resolve(server.dataDir);
  const { host, port } = splitListen(server.listen);
  const hostInUrl = host.includes(':') ? `[${host}]` : host;
  // Refuse to start rather than serve an open API beyond this machine, or with a token file
  // that cannot be read.
  let tokens: TokenTable;
  try {
    tokens = TokenTable.fromConfig(config);
  } catch (err) {
    configLoader.close();
    throw err;
  }
  if (!tokens.enabled && !isLoopback(host) && !server.insecureNoAuth) {
    configLoader.close();
    throw new ConfigError([{ path: 'server.listen', message: `listens on ${host}, beyond this machine, with no API token: set server.token, server.tokens or DROVER_TOKEN (or server.insecureNoAuth: true to run it open on purpose)` }], 'config');
  }
  // Webhook secrets are read now: one that cannot be read refuses the start.
  let notificationSettings: NotificationSettings;
  try {
    notificationSettings = loadNotificationSettings(config);
  } catch (err) {
    configLoader.close();
    throw err;
  }
  // TLS files are read and checked before anything else starts.
  let tls: ServerTls | null;
  try {
    tls = server.tls ? ServerTls.load(server.tls, { clock, logger: logger.child({ component: 'tls' }) }) : null;
  } catch (err) {
    configLoader.close();
    throw err;
  }
  const scheme = tls ? 'https' : 'http';
  // The advertised URL; with port 0 (tests) it is known once listening.
  let url = server.advertise ?? `${scheme}://${hostInUrl}:${port}`;
  // The database, the agent secret and (local provider) the instances' state: the server's user only.
  mkdirSync(dataDir, { recursive: true, mode: 0o700 });
  chmodSync(dataDir, 0o700);

  const db = openLocalDb(join(dataDir, 'drover.db'));
  // Each audit entry's webhook events land in the outbox in the entry's own transaction.
  db.setOutboxRouter(auditRouter(() => notificationSettings));
  const credentials = process.env.DROVER_AGENT_SECRET ? new AgentCredentials(process.env.DROVER_AGENT_SECRET) : AgentCredentials.fromFile(join(dataDir, 'agent-secret'));
  const provider: ManagedProvider = options.provider ?? (await providerFor(config, dataDir, clock, logger, options.agentCommand ?? defaultAgentCommand(), () => elector.isLeader()));
  // HA (leader.kind etcd): one elector per shard on etcd, operator decisions in etcd, and every
  // provider mutation fenced by the lease's local deadline.
  const leaderConfig = config.leader ?? { kind: 'single' as const, endpoints: [], ttl: 5_000 };
  const etcd = !options.elector && leaderConfig.kind === 'etcd' ? connectEtcd(leaderConfig.endpoints, { tls: leaderConfig.tls, auth: leaderConfig.auth }) : null;
  const etcdElector = etcd
    ? new EtcdElector({ client: etcd, shardId: config.shard.id, ttlMs: leaderConfig.ttl, address: () => url, clock, logger: logger.child({ component: 'leader' }) })
    : null;
  const elector: LeaderElector = options.elector ?? etcdElector ?? new SingleNodeElector(() => url);
  const sharedState = etcd && etcdElector ? new EtcdOperatorState({ client: etcd, shardId: config.shard.id, fence: () => etcdElector.fence(), clock, logger: logger.child({ component: 'operator-state' }) }) : null;
  const guardedProvider: Provider = elector instanceof SingleNodeElector ? provider : new FencedProvider(provider, elector, logger.child({ component: 'provider' }));
  /** Every replica's advertised URL, this one first: what agents are given (HA). */
  const agentServers = (): string => [url, ...server.replicas.map((r) => r.replace(/\/+$/, ''))].filter((u, i, all) => all.indexOf(u) === i).join(',');
  const bus = new EventBus();
  const tokenHolder = { current: tokens };

  // The hub and the reconciler refer to each other; the hub enqueues through this late binding.
  const late: { reconciler?: Reconciler; autoscaler?: Autoscaler; notifier?: Notifier } = {};
  const hub: AgentHub = new AgentHub({
    clock,
    db,
    credentials,
    logger: logger.child({ component: 'agents' }),
    enqueue: (event) => late.reconciler?.enqueue(event),
    healthCheckIntervalMs: () => configLoader.getCurrent().shard.healthCheckInterval,
    onHealthReport: (instanceId, sentAt) => {
      metrics.healthReports.inc();
      options.hooks?.onHealthReport?.(instanceId, sentAt);
    },
    // A rebalance recommendation is published (event stream); with the group's onRebalance:
    // replace it also asks for a replacement-first rotation, which waits for the group's budgets.
    onRebalance: (instanceId, noticeTime, where) => {
      bus.publish({ type: 'rebalance', data: { instanceId, tenant: where.tenant, group: where.group, noticeTime: noticeTime.toISOString(), at: clock.now().toISOString() } });
      const group = configLoader.getCurrent().groups[where.tenant]?.[where.group];
      if (group?.onRebalance !== 'replace' || !late.reconciler) return;
      late.reconciler.operator
        .requestDrain(instanceId, { force: false, waitForBudget: true, actor: 'cloud', why: `rebalance recommendation at ${noticeTime.toISOString()}` })
        .catch((err: unknown) => logger.info({ instanceId, err: errorMessage(err) }, 'rebalance recommendation not acted on'));
    },
    selfService: async (instanceId, request): Promise<SelfResult> => (late.reconciler ? selfService(late.reconciler, clock, instanceId, request) : { ok: false, message: 'server starting' }),
    onReject: (reason) => metrics.agentRejects.inc({ reason }),
    // A follower neither takes agents nor records health: it sends them to the leader.
    acceptsAgents: () => elector.isLeader(),
    recordsHealth: () => elector.isLeader(),
    leaderAddress: () => elector.leaderAddress(),
  });

  const metrics = new DroverMetrics(clock, {
    queue: () => {
      const s = late.reconciler?.stats();
      return { depth: s?.queueDepth ?? 0, runningSinceMs: s?.runningSinceMs ?? [], providerWaiting: s?.providerWaiting ?? 0, providerInFlight: s?.providerInFlight ?? 0 };
    },
    // Counted in SQL from the live-by-group index, not by reading every row.
    instanceCounts: () => db.liveCountsByGroup(),
    groups: () =>
      (late.reconciler?.currentPlans() ?? []).map((p) => ({
        tenant: p.tenant,
        group: p.group,
        size: p.summary.size,
        inService: p.summary.inService,
        unhealthy: p.summary.unhealthy,
        shortCircuited: p.summary.disruption.shortCircuited,
        budgets: p.summary.disruption.budgets,
      })),
    agentConnections: () => hub.connectionCount,
    isLeader: () => elector.isLeader(),
    autoscale: () => late.autoscaler?.status() ?? [],
    notifications: () => {
      const stats = new Map(db.outbox.stats().map((s) => [s.endpoint, s]));
      return (late.notifier?.status() ?? []).map((e) => {
        const s = stats.get(e.name);
        return { endpoint: e.name, pending: s?.pending ?? 0, dead: s?.dead ?? 0, oldestPendingAt: s?.oldestPendingAt ?? null, breakerOpen: e.breaker === 'open' };
      });
    },
  });

  const bootstrap = new BootstrapTokens({ db, clock, credentials, ttlMs: () => configLoader.getCurrent().server.agentBootstrapTokenTtl, epoch: () => elector.epoch() });
  const instanceManager = new DefaultInstanceManager({
    localDb: db,
    provider: guardedProvider,
    configLoader,
    clock,
    userData: (req) => agentUserData(provider.agentBootstrap ?? 'credential', req.instanceId, { servers: agentServers(), credentials, bootstrap, tls }),
  });

  const reconciler = new Reconciler({
    instanceManager,
    configLoader,
    localDb: db,
    provider: guardedProvider,
    clock,
    logger: logger.child({ component: 'reconciler' }),
    ...(sharedState ? { operatorState: sharedState } : {}),
    isLeader: () => elector.isLeader(),
    epoch: () => elector.epoch(),
    initialReconcileOnStart: false,
    // A big group booting at once: one replan per quarter second for its first health reports,
    // not one per report (bench B5).
    firstHealthReplanIntervalMs: 250,
    observer: { ...metrics.reconcilerObserver(), queue: metrics.queueObserver() },
    notifyDrain: (instanceId, group, reason, unhealthyAt, deleteAt) => {
      const delivered = hub.sendDrain(instanceId, reason, deleteAt);
      bus.publish({ type: 'drain', data: { instanceId, group, reason, unhealthyAt: unhealthyAt.toISOString(), deleteAt: deleteAt.toISOString(), deliveredToAgent: delivered } });
    },
    notifyDrainCancelled: (instanceId) => hub.sendDrainCancelled(instanceId),
    notifyError: (group, instanceId, message) => {
      bus.publish({ type: 'error', data: { group, instanceId: instanceId || null, message, at: clock.now().toISOString() } });
    },
  });

  late.reconciler = reconciler;
  // Target tracking on Prometheus (groups with `autoscale`), on the leader only; it never holds
  // the reconciler up: the size decision reads the last state it recorded.
  const autoscaler = new Autoscaler({
    target: reconciler,
    configLoader,
    audit: db,
    clock,
    logger: logger.child({ component: 'autoscale' }),
    isLeader: () => elector.isLeader(),
    epoch: () => elector.epoch(),
    observer: metrics.autoscaleObserver(),
  });
  late.autoscaler = autoscaler;
  // Webhooks: delivered from the outbox by the leader only, never in the reconciler's way.
  const notifier = new Notifier({
    outbox: db.outbox,
    clock,
    logger: logger.child({ component: 'notifications' }),
    settings: () => notificationSettings,
    isLeader: () => elector.isLeader(),
    userAgent: `drover/${VERSION}`,
    observer: metrics.notifierObserver(),
  });
  late.notifier = notifier;

  db.subscribe((change) => {
    if (change.kind === 'audit') {
      bus.publish({ type: 'audit', id: String(change.entry.seq), data: auditView(change.entry) });
      if (notificationSettings.endpoints.size > 0) {
        const action = change.entry.action;
        if (action === 'drain' || action === 'drainExtended' || action === 'drainAcked' || action === 'drainCancelled') notifier.drainsChanged();
        else notifier.wake();
      }
    }
    else if (change.kind === 'firstHealth') bus.publish({ type: 'health', data: { instanceId: change.instanceId, tenant: change.tenant, group: change.group, at: change.at.toISOString() } });
  });
  configLoader.onChange((next) => {
    // Tokens follow the config (a rotated token file, a token added or removed); one that cannot
    // be read keeps the tokens in force.
    try {
      tokenHolder.current = TokenTable.fromConfig(next);
    } catch (err) {
      logger.error({ err: errorMessage(err) }, 'API tokens not reloaded; the previous ones stay in force');
      bus.publish({ type: 'config', data: { ok: false, error: errorMessage(err), at: clock.now().toISOString() } });
    }
    // Webhook endpoints and secrets follow the config too (a secret file rotated with a reload);
    // one that cannot be read keeps the endpoints in force.
    try {
      notificationSettings = loadNotificationSettings(next);
      notifier.wake();
    } catch (err) {
      logger.error({ err: errorMessage(err) }, 'notification endpoints not reloaded; the previous ones stay in force');
      bus.publish({ type: 'config', data: { ok: false, error: errorMessage(err), at: clock.now().toISOString() } });
    }
    metrics.configReloads.inc({ result: 'ok' });
    logger.info({ file: configLoader.filePath }, 'config reloaded');
    bus.publish({ type: 'config', data: { ok: true, at: clock.now().toISOString() } });
  });
  configLoader.onInvalid((error) => {
    metrics.configReloads.inc({ result: 'invalid' });
    logger.error({ file: configLoader.filePath, issues: error.issues }, 'config rejected; previous config stays in force');
    bus.publish({ type: 'config', data: { ok: false, error: error.message, issues: error.issues, at: clock.now().toISOString() } });
  });
  let handover: TimerHandle | undefined;
  elector.onChange((leader) => {
    logger.info({ leader, epoch: elector.epoch() }, 'leadership changed');
    bus.publish({ type: 'leader', data: { leader, epoch: elector.epoch(), at: clock.now().toISOString() } });
    handover?.cancel();
    handover = undefined;
    autoscaler.setLeader(leader);
    if (leader) notifier.wake();
    if (leader) reconciler.enqueue({ type: EventType.InitialReconcile, cause: 'leader' });
    // Once the lease has surely expired at etcd (a lapse lasting a TTL is a loss, not a slow
    // renewal), its agents move on to the new leader: they know every replica's address.
    else handover = clock.schedule(clock.nowMs() + leaderConfig.ttl, () => {
      if (!elector.isLeader()) hub.disconnectAll('this replica no longer leads its shard');
    });
  });

  let http: FastifyInstance;
  try {
    http = await buildHttpServer({
      clock,
      logger,
      db,
      reconciler,
      configLoader,
      hub,
      bus,
      metrics,
      elector,
      tokens: tokenHolder,
      bootstrap,
      hosts: new HostPolicy(config),
      metricsToken: server.metricsToken,
      requestTimeoutMs: server.requestTimeout,
      maxEventSubscribers: server.maxEventSubscribers,
      https: tls?.httpsOptions() ?? null,
      version: VERSION,
      notifier,
    });
    await http.listen({ host, port });
    tls?.watch(http.server);
    const address = http.server.address();
    if (!server.advertise && address && typeof address === 'object') url = `${scheme}://${hostInUrl}:${address.port}`;
  } catch (err) {
    tls?.close();
    await reconciler.stop();
    await hub.close();
    etcd?.close();
    db.close();
    configLoader.close();
    // Most often the address is in use or not this machine's: the cause says which.
    throw new UnavailableError(doing(`starting the admin API on ${server.listen}`, err), err);
  }
  if (!tokens.enabled) logger.warn({ listen: server.listen }, 'no API token configured: anyone who can reach the listen address can use the API');

  // Retention: audit entries and deleted instances older than store.retention go, hourly.
  let retentionTimer: TimerHandle | undefined;
  const purge = (): void => {
    try {
      const cutoff = new Date(clock.nowMs() - configLoader.getCurrent().store.retention);
      const removed = db.purgeBefore(cutoff);
      if (removed.audit + removed.instances > 0) logger.info({ ...removed, before: cutoff.toISOString() }, 'old audit entries and deleted instances removed');
      const outbox = db.outbox.purge(cutoff.getTime(), cutoff.getTime());
      if (outbox.delivered + outbox.dead > 0) logger.info({ ...outbox, before: cutoff.toISOString() }, 'old delivered notifications and dead letters removed');
      // Bootstrap tokens are worthless once expired: an instance's go when all of its have.
      const tokens = db.purgeBootstrapTokens(clock.now());
      if (tokens > 0) logger.info({ tokens }, 'expired agent bootstrap tokens removed');
    } catch (err) {
      logger.error({ err: errorMessage(err) }, 'retention sweep failed');
    }
    retentionTimer = clock.schedule(clock.nowMs() + RETENTION_SWEEP_MS, purge);
  };
  purge();

  // Webhook secret files are re-read on a timer too: rotating a secret rewrites its file (the new
  // secret first, the old one second) and changes no config text, so no reload would see it. A
  // file that cannot be read keeps the secrets in force, reported once until it can be read again.
  let secretTimer: TimerHandle | undefined;
  let secretError: string | null = null;
  const rereadSecrets = (): void => {
    if (configLoader.getCurrent().notifications.length > 0) {
      try {
        const fresh = loadNotificationSettings(configLoader.getCurrent());
        if (!sameSecrets(fresh, notificationSettings)) {
          notificationSettings = fresh;
          logger.info({ endpoints: [...fresh.endpoints.keys()] }, 'webhook secrets re-read');
          notifier.wake();
        }
        secretError = null;
      } catch (err) {
        const message = errorMessage(err);
        if (message !== secretError) logger.error({ err: message }, 'webhook secrets not re-read; the previous ones stay in force');
        secretError = message;
      }
    }
    secretTimer = clock.schedule(clock.nowMs() + SECRET_REREAD_MS, rereadSecrets);
  };
  secretTimer = clock.schedule(clock.nowMs() + SECRET_REREAD_MS, rereadSecrets);

  // Operator decisions must be read before this replica may act on them.
  await sharedState?.start();
  await reconciler.start();
  provider.start?.();
  autoscaler.start();
  notifier.start();
  await elector.start();
  logger.info({ url, dataDir, provider: provider.kind, groups: configuredGroups(config).length, version: VERSION }, 'drover server started');

  let stopped = false;
  return {
    get url() {
      return url;
    },
    config: () => configLoader.getCurrent(),
    reconciler,
    db,
    elector,
    routes: () => routesOf(http),
    async stop(): Promise<void> {
      if (stopped) return;
      stopped = true;
      logger.info({}, 'drover server stopping');
      retentionTimer?.cancel();
      secretTimer?.cancel();
      await elector.stop();
      await autoscaler.stop();
      await notifier.stop();
      await hub.close();
      await http.close();
      tls?.close();
      await reconciler.stop();
      await provider.close?.();
      await sharedState?.close();
      etcd?.close();
      configLoader.close();
      db.close();
      logger.info({}, 'drover server stopped');
    },
  };
}
