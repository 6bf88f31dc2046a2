/**
 * LocalProvider: a real provider whose instances are process trees on this machine (Linux: it
 * reads /proc). Each instance is the Drover agent, started detached in its own session and
 * process group, with the workload the agent supervises under it. It outlives the server that
 * created it, and a restarted server adopts it again from the state folder.
 *
 * State, one folder per instance: `<stateDir>/<instanceId>/`
 * - `meta.json`   providerId, idempotencyKey, tags, template, createdAt; once started pid, pgid,
 *                 startedAt and the process start time (/proc/<pid>/stat field 22), which guards
 *                 against pid reuse; `deadSince` once the process was seen gone.
 * - `agent.json`  the agent's config (src/agent/config.ts), mode 0600: it holds the credential.
 * - `agent.log`   stdout and stderr of the agent and its workload (appended to).
 * - `agent.pid`   written by the agent at start.
 * - `notice.json` a termination notice `{ "terminateAt": ISO }` (see `writeNotice`).
 * - `agent.sock`  the agent's self-service socket (`drover self ...`), created by the agent.
 *
 * The folder is mode 0700 and every file the provider writes in it 0600.
 *
 * The provider id is the folder name, which is the idempotency key (the Drover instance id).
 * The agent (and so its workload) does not get the server's environment: only the variables of
 * `INHERITED_ENV`, those the template names in `passEnv` (never `WITHHELD_ENV`), the values the
 * template gives in `env`, and DROVER_INSTANCE_ID (see `instanceEnv`). Its server addresses and
 * credential reach it in `agent.json`, not the environment.
 * Every process of an instance carries `DROVER_INSTANCE_ID=<id>` in its environment; this is how
 * a process is recognised as the instance's when its pid was never recorded (the server died
 * between spawn and writing meta.json) and how processes that left the group are found at delete.
 *
 * Contracts:
 * - `create` is idempotent on the key: a live instance is returned as it is; a folder whose
 *   process was never started (crash between mkdir and spawn) is started; an instance that was
 *   started and has died is returned with status `terminated` (it is not started again).
 * - `status` is `running`, or `stopped` while SIGSTOPped; an instance whose process is gone
 *   (dead, zombie, pid reused) is an InstanceNotFoundError, as is one that never existed.
 * - `delete` sends SIGTERM then SIGCONT to the process group, SIGKILL after `killGracePeriodMs`,
 *   waits until every process of the instance is gone, then removes the folder.
 * - `list` returns live instances only; the folders of dead ones are removed after
 *   `deadRetentionMs` (default 10 min) so their logs can still be read.
 * - A termination notice is honoured: after `start()`, a sweep every `noticeSweepMs` deletes
 *   instances whose notice time has passed, and removes expired dead folders. `close()` stops it.
 * - Several servers may share one state folder (HA replicas on one machine): each mutation, and
 *   the sweep, runs only while `mayMutate()` says so (the shard leader); otherwise NotLeaderError.
 */
import { spawn } from 'node:child_process';
import { chmodSync, closeSync, existsSync, mkdirSync, openSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import type { Clock, TimerHandle } from '../../clock/index.js';
import type { TemplateSpec } from '../../config/index.js';
import { agentConfigSchema, type AgentConfig } from '../../agent/config.js';
import { DroverError, InstanceNotFoundError, InvalidRequestError, NotLeaderError, PermanentError, doing, errorMessage } from '../../errors/index.js';
import type { Logger } from '../../logging/index.js';
import type { Provider, ProviderCreateRequest, ProviderInstance, ProviderStatus } from '../types.js';
import { INSTANCE_ENV, instanceEnv, templateEnv, type InstanceEnvSpec } from './environment.js';
import { hasErrorCode, readJsonFile, writeFileAtomic } from './files.js';
import {
  groupMembers,
  hasProcFs,
  isExited,
  isStoppedState,
  processesWithEnv,
  processHasEnv,
  readProcStat,
  signalGroup,
  signalProcess,
  type ProcStat,
} from './proc.js';

export interface LocalProviderOptions {
  /** Folder holding one sub-folder per instance. Created if absent. */
  stateDir: string;
  /**
   * argv prefix that runs the agent, e.g. `[process.execPath, '/abs/dist/cli/main.js', 'agent']`.
   * The provider appends `['--config', '<instance dir>/agent.json']`.
   */
  agentCommand: string[];
  /** Time between SIGTERM and SIGKILL at delete. Default 10 000. */
  killGracePeriodMs?: number;
  clock: Clock;
  logger?: Logger;
  /** Period of the termination-notice sweep started by `start()`. Default 1 000. */
  noticeSweepMs?: number;
  /** How long the folder of a dead instance is kept (for its log) before removal. Default 10 min. */
  deadRetentionMs?: number;
  /**
   * Whether this process may change instances now (HA: only the shard leader may). Checked at the
   * start of every create, delete and tag write, again before each step that follows a wait
   * (spawning, SIGKILL), and before each sweep. Default: always.
   */
  mayMutate?: () => boolean;
}

/** Paths of one instance's state. */
export interface LocalInstancePaths {
  dir: string;
  meta: string;
  agentConfig: string;
  log: string;
  notice: string;
  pidFile: string;
}

interface InstanceMeta {
  providerId: string;
  idempotencyKey: string;
  tags: Record<string, string>;
  template: TemplateSpec;
  createdAt: string;
  startedAt?: string;
  pid?: number;
  /** Process group of the instance (the agent's session); equals `pid` when the provider spawned it. */
  pgid?: number;
  /** /proc/<pid>/stat field 22 of `pid`; absent when the process had already exited when read. */
  startTime?: string;
  deadSince?: string;
}

interface LiveProcess {
  pid: number;
  pgid: number;
  stat: ProcStat;
}

const ID_PATTERN = /^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$/;
const POLL_MS = 50;
/** How long to wait for processes to vanish after SIGKILL before reporting a (retryable) failure. */
const AFTER_KILL_WAIT_MS = 5_000;
const noopLogger: Logger = { debug: () => undefined, info: () => undefined, warn: () => undefined, error: () => undefined };

/** The files of instance `instanceId` under `stateDir`. Throws InvalidRequestError for an unsafe id. */
export function localInstancePaths(stateDir: string, instanceId: string): LocalInstancePaths {
  if (!ID_PATTERN.test(instanceId)) throw new InvalidRequestError(`local instance id ${JSON.stringify(instanceId)}: must match ${String(ID_PATTERN)}`);
  const dir = join(stateDir, instanceId);
  return {
    dir,
    meta: join(dir, 'meta.json'),
    agentConfig: join(dir, 'agent.json'),
    log: join(dir, 'agent.log'),
    notice: join(dir, 'notice.json'),
    pidFile: join(dir, 'agent.pid'),
  };
}

/**
 * Publishes a termination notice for a local instance, as a cloud does in instance metadata:
 * `<dir>/notice.json` = `{ "terminateAt": ISO }`. The instance's agent forwards it to the server,
 * and a started LocalProvider deletes the instance once `terminateAt` has passed.
 * Throws InstanceNotFoundError when the instance has no folder.
 */
export function writeNotice(stateDir: string, instanceId: string, terminateAt: Date): void {
  if (Number.isNaN(terminateAt.getTime())) throw new InvalidRequestError('termination notice: invalid time');
  const paths = localInstancePaths(stateDir, instanceId);
  if (!existsSync(paths.meta)) throw new InstanceNotFoundError(instanceId);
  writeFileAtomic(paths.notice, `${JSON.stringify({ terminateAt: terminateAt.toISOString() })}\n`, 0o600);
}

/** The termination time in `<dir>/notice.json`, or null when there is no valid notice. */
export function readNotice(stateDir: string, instanceId: string): Date | null {
  const raw = readJsonFile(localInstancePaths(stateDir, instanceId).notice);
  if (!raw || typeof raw !== 'object') return null;
  const at = (raw as Record<string, unknown>).terminateAt;
  if (typeof at !== 'string') return null;
  const ms = Date.parse(at);
  return Number.isNaN(ms) ? null : new Date(ms);
}

export class LocalProvider implements Provider {
  readonly kind = 'local';
  private readonly stateDir: string;
  private readonly agentCommand: readonly string[];
  private readonly killGraceMs: number;
  private readonly clock: Clock;
  private readonly log: Logger;
  private readonly sweepMs: number;
  private readonly deadRetentionMs: number;
  /** Per-instance chains serialising create and delete of the same instance. */
  private readonly locks = new Map<string, Promise<void>>();
  private readonly ownPgrp: number;
  private readonly mayMutate: () => boolean;
  private sweepTimer: TimerHandle | undefined;
  private sweeping: Promise<void> | undefined;
  private running = false;

  constructor(options: LocalProviderOptions) {
    if (!hasProcFs()) throw new Error('local provider: needs /proc (Linux)');
    if (options.agentCommand.length === 0 || !options.agentCommand[0]) throw new Error('local provider: agentCommand must not be empty');
    this.stateDir = options.stateDir;
    this.agentCommand = [...options.agentCommand];
    this.killGraceMs = options.killGracePeriodMs ?? 10_000;
    this.clock = options.clock;
    this.log = options.logger ?? noopLogger;
    this.sweepMs = options.noticeSweepMs ?? 1_000;
    this.deadRetentionMs = options.deadRetentionMs ?? 10 * 60_000;
    this.ownPgrp = readProcStat(process.pid)?.pgrp ?? -1;
    this.mayMutate = options.mayMutate ?? (() => true);
    mkdirSync(this.stateDir, { recursive: true, mode: 0o700 });
  }

  // ---- lifecycle ---------------------------------------------------------------------------

  /** Starts the periodic sweep (termination notices, removal of expired dead folders). */
  start(): void {
    if (this.running) return;
    this.running = true;
    this.scheduleSweep();
  }

  /** Stops the sweep and waits for a sweep in progress. Instances keep running. */
  async close(): Promise<void> {
    this.running = false;
    this.sweepTimer?.cancel();
    this.sweepTimer = undefined;
    await this.sweeping;
  }

  // ---- the Provider API --------------------------------------------------------------------

  async create(req: ProviderCreateRequest): Promise<ProviderInstance> {
    const paths = localInstancePaths(this.stateDir, req.idempotencyKey);
    const id = req.idempotencyKey;
    const agentConfig = buildAgentConfig(req, paths);
    const envSpec = templateEnv(req.template, id);
    return this.locked(id, async () => {
      this.fence(`local provider create ${id}`);
      mkdirSync(this.stateDir, { recursive: true, mode: 0o700 });
      let fresh = true;
      try {
        mkdirSync(paths.dir, { mode: 0o700 });
      } catch (err) {
        if (!hasErrorCode(err, 'EEXIST')) throw new DroverError(doing(`local provider create ${id}`, err), { code: 'provider', retryable: true, cause: err });
        fresh = false;
      }
      // Exactly 0700 whatever the umask, and for a folder an older version left more open.
      chmodSync(paths.dir, 0o700);
      if (!fresh) {
        const meta = this.readMeta(paths);
        if (meta) {
          const live = this.findProcess(paths, meta);
          if (live) {
            this.log.debug({ providerId: id, pid: live.pid }, 'local instance already exists');
            return { providerId: id, status: statusOf(live.stat), tags: { ...meta.tags } };
          }
          if (this.wasStarted(paths, meta)) {
            this.log.info({ providerId: id }, 'local instance already created and no longer running');
            return { providerId: id, status: 'terminated', tags: { ...meta.tags } };
          }
          this.log.info({ providerId: id }, 'starting local instance created but never started');
        }
      }
      const meta: InstanceMeta = {
        providerId: id,
        idempotencyKey: id,
        tags: { ...req.tags },
        template: req.template,
        createdAt: (fresh ? undefined : this.readMeta(paths)?.createdAt) ?? this.clock.now().toISOString(),
      };
      writeFileAtomic(paths.agentConfig, `${JSON.stringify(agentConfig, null, 2)}\n`, 0o600);
      this.writeMeta(paths, meta);
      this.fence(`local provider create ${id}`);
      const pid = await this.spawnAgent(id, paths, envSpec);
      const stat = readProcStat(pid);
      const started: InstanceMeta = {
        ...meta,
        startedAt: this.clock.now().toISOString(),
        pid,
        pgid: pid, // detached: the agent leads its own session and process group
        ...(stat && !isExited(stat) ? { startTime: stat.startTime } : {}),
      };
      this.writeMeta(paths, started);
      this.log.info({ providerId: id, pid }, 'local instance started');
      return { providerId: id, status: stat && !isExited(stat) ? statusOf(stat) : 'terminated', tags: { ...meta.tags } };
    });
  }

  async delete(providerId: string): Promise<void> {
    const paths = this.pathsOrNotFound(providerId);
    await this.locked(providerId, async () => {
      this.fence(`local provider delete ${providerId}`);
      const meta = this.readMeta(paths);
      if (!meta) {
        if (existsSync(paths.dir)) rmSync(paths.dir, { recursive: true, force: true });
        throw new InstanceNotFoundError(providerId);
      }
      const live = this.findProcess(paths, meta);
      if (!live) {
        await this.killStragglers(providerId, meta.pgid);
        rmSync(paths.dir, { recursive: true, force: true });
        this.log.info({ providerId }, 'removed folder of a local instance that was already gone');
        throw new InstanceNotFoundError(providerId);
      }
      this.log.info({ providerId, pid: live.pid, pgid: live.pgid }, 'deleting local instance');
      // A stopped group does not act on SIGTERM until continued: send both.
      this.signalInstanceGroup(live.pgid, 'SIGTERM');
      this.signalInstanceGroup(live.pgid, 'SIGCONT');
      let gone = await this.waitUntil(() => this.groupGone(live.pgid), this.killGraceMs);
      if (!gone) {
        this.fence(`local provider delete ${providerId}`);
        this.log.warn({ providerId, pgid: live.pgid, graceMs: this.killGraceMs }, 'local instance outlived its grace period; killing');
        this.signalInstanceGroup(live.pgid, 'SIGKILL');
        gone = await this.waitUntil(() => this.groupGone(live.pgid), AFTER_KILL_WAIT_MS);
      }
      if (!gone) throw new DroverError(`local provider delete ${providerId}: processes of group ${live.pgid} survived SIGKILL`, { code: 'provider', retryable: true });
      await this.killStragglers(providerId, undefined);
      rmSync(paths.dir, { recursive: true, force: true });
      this.log.info({ providerId }, 'local instance deleted');
    });
  }

  async status(providerId: string): Promise<ProviderStatus> {
    const paths = this.pathsOrNotFound(providerId);
    const meta = this.readMeta(paths);
    if (!meta) throw new InstanceNotFoundError(providerId);
    const live = this.findProcess(paths, meta);
    if (!live) {
      this.markDead(paths);
      throw new InstanceNotFoundError(providerId);
    }
    return statusOf(live.stat);
  }

  async list(tags: Record<string, string>): Promise<ProviderInstance[]> {
    const wanted = Object.entries(tags);
    const out: ProviderInstance[] = [];
    for await (const { id, meta, live } of this.liveInstances()) {
      if (wanted.every(([k, v]) => meta.tags[k] === v)) out.push({ providerId: id, status: statusOf(live.stat), tags: { ...meta.tags } });
    }
    return out;
  }

  /** Merges `tags` into the instance's tags. InstanceNotFoundError when it is gone. */
  async setTags(providerId: string, tags: Record<string, string>): Promise<void> {
    const paths = this.pathsOrNotFound(providerId);
    // Read-modify-write with no await in between: atomic with respect to this process.
    const meta = this.readMeta(paths);
    if (!meta || !this.findProcess(paths, meta)) throw new InstanceNotFoundError(providerId);
    this.fence(`local provider setTags ${providerId}`);
    this.writeMeta(paths, { ...meta, tags: { ...meta.tags, ...tags } });
  }

  // ---- the sweep ---------------------------------------------------------------------------

  /** One pass of the sweep: deletes instances whose termination notice is due, collects dead folders. */
  async sweep(): Promise<void> {
    if (!this.mayMutate()) return; // a replica that does not lead leaves the instances alone
    const nowMs = this.clock.nowMs();
    for await (const { id } of this.liveInstances()) {
      const notice = readNotice(this.stateDir, id);
      if (!notice || notice.getTime() > nowMs) continue;
      this.log.info({ providerId: id, terminateAt: notice.toISOString() }, 'termination notice due; deleting local instance');
      try {
        await this.delete(id);
      } catch (err) {
        if (!(err instanceof InstanceNotFoundError)) this.log.error({ providerId: id, err: errorMessage(err) }, 'deleting a local instance at its notice time failed');
      }
    }
  }

  /** The instances whose process lives; the folders of dead ones are collected on the way. */
  private async *liveInstances(): AsyncGenerator<{ id: string; meta: InstanceMeta; live: LiveProcess }> {
    for (const id of this.instanceIds()) {
      const paths = localInstancePaths(this.stateDir, id);
      const meta = this.readMeta(paths);
      if (!meta) continue;
      const live = this.findProcess(paths, meta);
      if (live) yield { id, meta, live };
      else await this.collectDead(id, paths, meta);
    }
  }

  /** Throws NotLeaderError when this process may not change instances now. */
  private fence(action: string): void {
    if (!this.mayMutate()) throw new NotLeaderError(action);
  }

  private scheduleSweep(): void {
    if (!this.running) return;
    this.sweepTimer = this.clock.schedule(this.clock.nowMs() + this.sweepMs, () => {
      this.sweeping = this.sweep()
        .catch((err: unknown) => this.log.error({ err: errorMessage(err) }, 'local provider sweep failed'))
        .finally(() => {
          this.sweeping = undefined;
          this.scheduleSweep();
        });
    });
  }

  // ---- processes ---------------------------------------------------------------------------

  /**
   * The live leader process of the instance, or null. With a recorded pid, the start time must
   * match (pid reuse) and the process must not be a zombie. Without one (the server died before
   * recording it), the agent's pid file, then the environment of every process, is searched for
   * a process carrying the instance id; one found is recorded in meta.json.
   */
  private findProcess(paths: LocalInstancePaths, meta: InstanceMeta): LiveProcess | null {
    if (meta.pid !== undefined) {
      if (meta.startTime === undefined) return null;
      const stat = readProcStat(meta.pid);
      if (!stat || stat.startTime !== meta.startTime || isExited(stat)) return null;
      return { pid: meta.pid, pgid: meta.pgid ?? meta.pid, stat };
    }
    let stat: ProcStat | null = null;
    const filePid = readPidFile(paths.pidFile);
    if (filePid !== null) {
      const s = readProcStat(filePid);
      if (s && !isExited(s) && processHasEnv(filePid, INSTANCE_ENV, meta.providerId)) stat = s;
    }
    if (!stat) {
      const carriers = processesWithEnv(INSTANCE_ENV, meta.providerId);
      stat = carriers.find((c) => c.pid === c.pgrp) ?? carriers[0] ?? null;
    }
    if (!stat || stat.pgrp === this.ownPgrp) return null;
    const leader = readProcStat(stat.pgrp);
    const chosen = leader && !isExited(leader) && processHasEnv(leader.pid, INSTANCE_ENV, meta.providerId) ? leader : stat;
    // Re-read and update meta synchronously so a concurrent tag write is not lost.
    const current = this.readMeta(paths);
    if (current && current.pid === undefined) {
      const { deadSince: _dead, ...rest } = current;
      this.writeMeta(paths, { ...rest, pid: chosen.pid, pgid: chosen.pgrp, startTime: chosen.startTime, startedAt: rest.startedAt ?? this.clock.now().toISOString() });
      this.log.info({ providerId: meta.providerId, pid: chosen.pid }, 'adopted local instance process');
    }
    return { pid: chosen.pid, pgid: chosen.pgrp, stat: chosen };
  }

  /** Whether the instance was ever started: a pid was recorded, or the agent wrote its pid file. */
  private wasStarted(paths: LocalInstancePaths, meta: InstanceMeta): boolean {
    return meta.pid !== undefined || existsSync(paths.pidFile);
  }

  private async spawnAgent(id: string, paths: LocalInstancePaths, envSpec: InstanceEnvSpec): Promise<number> {
    const [command, ...args] = this.agentCommand as [string, ...string[]];
    const logFd = openSync(paths.log, 'a', 0o600);
    let child;
    try {
      child = spawn(command, [...args, '--config', paths.agentConfig], {
        cwd: paths.dir,
        detached: true,
        stdio: ['ignore', logFd, logFd],
        env: instanceEnv(id, envSpec),
      });
    } finally {
      closeSync(logFd);
    }
    const { pid } = child;
    if (pid === undefined) {
      const err = await new Promise<unknown>((resolve) => child.once('error', resolve));
      const msg = doing(`local provider create ${id}: starting ${command}`, err);
      if (hasErrorCode(err, 'ENOENT') || hasErrorCode(err, 'EACCES')) throw new PermanentError(new DroverError(msg, { code: 'provider', retryable: false, cause: err }));
      throw new DroverError(msg, { code: 'provider', retryable: true, cause: err });
    }
    child.on('error', (err) => this.log.warn({ providerId: id, err: err.message }, 'local instance process error'));
    child.unref();
    return pid;
  }

  private groupGone(pgid: number): boolean {
    return groupMembers(pgid).length === 0;
  }

  private signalInstanceGroup(pgid: number, signal: NodeJS.Signals): void {
    if (pgid === this.ownPgrp) return; // never signal the server's own group
    signalGroup(pgid, signal);
  }

  /**
   * SIGKILLs what remains of an instance whose leader is gone: the rest of its process group (if
   * a member still carries the instance id; otherwise the group id may belong to someone else)
   * and any process carrying the instance id that left the group.
   */
  private async killStragglers(id: string, pgid: number | undefined): Promise<void> {
    const victims = new Set<number>();
    if (pgid !== undefined && pgid !== this.ownPgrp) {
      const members = groupMembers(pgid);
      if (members.some((m) => processHasEnv(m.pid, INSTANCE_ENV, id))) {
        signalGroup(pgid, 'SIGKILL');
        for (const m of members) victims.add(m.pid);
      }
    }
    for (const p of processesWithEnv(INSTANCE_ENV, id)) {
      if (p.pgrp === this.ownPgrp) continue;
      signalProcess(p.pid, 'SIGKILL');
      victims.add(p.pid);
    }
    if (victims.size === 0) return;
    this.log.info({ providerId: id, pids: [...victims] }, 'killed remaining processes of a local instance');
    await this.waitUntil(() => [...victims].every((pid) => {
      const s = readProcStat(pid);
      return !s || isExited(s);
    }), AFTER_KILL_WAIT_MS);
  }

  /** Polls `done` every POLL_MS on the clock until it holds or `timeoutMs` passed. */
  private async waitUntil(done: () => boolean, timeoutMs: number): Promise<boolean> {
    const deadline = this.clock.nowMs() + timeoutMs;
    for (;;) {
      if (done()) return true;
      if (this.clock.nowMs() >= deadline) return false;
      await this.clock.sleep(Math.min(POLL_MS, Math.max(1, deadline - this.clock.nowMs())));
    }
  }

  // ---- state files -------------------------------------------------------------------------

  private pathsOrNotFound(providerId: string): LocalInstancePaths {
    try {
      return localInstancePaths(this.stateDir, providerId);
    } catch {
      throw new InstanceNotFoundError(providerId);
    }
  }

  private instanceIds(): string[] {
    let entries;
    try {
      entries = readdirSync(this.stateDir, { withFileTypes: true });
    } catch {
      return [];
    }
    return entries.filter((e) => e.isDirectory() && ID_PATTERN.test(e.name)).map((e) => e.name);
  }

  private readMeta(paths: LocalInstancePaths): InstanceMeta | null {
    const raw = readJsonFile(paths.meta);
    if (!raw || typeof raw !== 'object') return null;
    const m = raw as Partial<InstanceMeta>;
    if (typeof m.providerId !== 'string' || typeof m.idempotencyKey !== 'string' || typeof m.createdAt !== 'string' || !m.tags || typeof m.tags !== 'object') return null;
    return m as InstanceMeta;
  }

  private writeMeta(paths: LocalInstancePaths, meta: InstanceMeta): void {
    writeFileAtomic(paths.meta, `${JSON.stringify(meta, null, 2)}\n`, 0o600);
  }

  /** Records the first time the instance was seen without a live process. */
  private markDead(paths: LocalInstancePaths): InstanceMeta | null {
    const meta = this.readMeta(paths);
    if (!meta || meta.deadSince) return meta;
    const marked = { ...meta, deadSince: this.clock.now().toISOString() };
    this.writeMeta(paths, marked);
    return marked;
  }

  /** Marks a dead instance; removes its folder (and any leftover process) once retention has passed. */
  private async collectDead(id: string, paths: LocalInstancePaths, meta: InstanceMeta): Promise<void> {
    const marked = this.markDead(paths) ?? meta;
    const since = marked.deadSince ? Date.parse(marked.deadSince) : NaN;
    if (Number.isNaN(since) || this.clock.nowMs() - since < this.deadRetentionMs) return;
    if (this.locks.has(id)) return; // a create or delete is working on it
    await this.locked(id, async () => {
      const again = this.readMeta(paths);
      if (!again || this.findProcess(paths, again)) return;
      await this.killStragglers(id, again.pgid);
      rmSync(paths.dir, { recursive: true, force: true });
      this.log.info({ providerId: id }, 'removed folder of a dead local instance');
    });
  }

  private async locked<T>(id: string, fn: () => Promise<T>): Promise<T> {
    const previous = this.locks.get(id) ?? Promise.resolve();
    let release: () => void = () => undefined;
    const mine = new Promise<void>((resolve) => {
      release = resolve;
    });
    const chain = previous.then(() => mine);
    this.locks.set(id, chain);
    await previous;
    try {
      return await fn();
    } finally {
      release();
      if (this.locks.get(id) === chain) this.locks.delete(id);
    }
  }
}

function statusOf(stat: ProcStat): ProviderStatus {
  return isStoppedState(stat) ? 'stopped' : 'running';
}

function readPidFile(path: string): number | null {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch {
    return null;
  }
  const pid = Number(text.trim());
  return Number.isInteger(pid) && pid > 1 ? pid : null;
}

/** A template field that must be a non-empty array of non-empty strings when present. */
function commandField(template: TemplateSpec, field: string, id: string): string[] | undefined {
  const value = template[field];
  if (value === undefined) return undefined;
  if (!Array.isArray(value) || value.length === 0 || !value.every((v): v is string => typeof v === 'string' && v.length > 0)) {
    throw new InvalidRequestError(`local provider create ${id}: template.${field} must be a non-empty array of strings`);
  }
  return [...value];
}

/** The agent config for a create request. Throws InvalidRequestError for bad user data or template fields. */
function buildAgentConfig(req: ProviderCreateRequest, paths: LocalInstancePaths): AgentConfig {
  const id = req.idempotencyKey;
  const servers = (req.userData?.DROVER_SERVER ?? '')
    .split(',')
    .map((s) => s.trim())
    .filter((s) => s.length > 0);
  const credential = req.userData?.DROVER_AGENT_CREDENTIAL;
  if (servers.length === 0) throw new InvalidRequestError(`local provider create ${id}: userData.DROVER_SERVER is required`);
  if (!credential) throw new InvalidRequestError(`local provider create ${id}: userData.DROVER_AGENT_CREDENTIAL is required`);
  const command = commandField(req.template, 'command', id);
  const drainCommand = commandField(req.template, 'drainCommand', id);
  const healthCommand = commandField(req.template, 'healthCommand', id);
  const interval = req.template.healthCheckIntervalMs;
  const candidate = {
    instanceId: id,
    servers,
    credential,
    ...(command ? { command } : {}),
    ...(drainCommand ? { drainCommand } : {}),
    ...(healthCommand ? { healthCommand } : {}),
    noticeFile: paths.notice,
    pidFile: paths.pidFile,
    selfSocket: join(paths.dir, 'agent.sock'),
    ...(interval !== undefined ? { healthCheckIntervalMs: interval } : {}),
    // h-tls: the CA to verify the servers against (PEM), and the client certificate files for mutual TLS.
    ...(req.userData?.DROVER_SERVER_CA ? { serverCa: req.userData.DROVER_SERVER_CA } : {}),
    ...(req.userData?.DROVER_AGENT_CERT && req.userData.DROVER_AGENT_KEY ? { clientCert: req.userData.DROVER_AGENT_CERT, clientKey: req.userData.DROVER_AGENT_KEY } : {}),
  };
  const parsed = agentConfigSchema.safeParse(candidate);
  if (!parsed.success) {
    // Never echo the credential: report paths and messages only.
    throw new InvalidRequestError(`local provider create ${id}: invalid agent config: ${parsed.error.issues.map((i) => `${i.path.join('.')}: ${i.message}`).join('; ')}`);
  }
  return parsed.data;
}
