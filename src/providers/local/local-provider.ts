/**
 * LocalProvider: a real provider whose instances are process trees on this machine (Linux: it
 * reads /proc). Each instance is the Drover agent, started detached in its own session and
 * process group, with the workload the agent supervises under it. It outlives the server that
 * created it, and a restarted server adopts it again from the state folder.
 *
 * State: one folder per instance under `stateDir`, described in instance-store.ts; the agent's
 * config in it is built in agent-config.ts, and termination notices are notice.ts.
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
import { closeSync, openSync } from 'node:fs';
import type { Clock, TimerHandle } from '../../clock/index.js';
import { DroverError, InstanceNotFoundError, NotLeaderError, PermanentError, doing, errorMessage } from '../../errors/index.js';
import type { Logger } from '../../logging/index.js';
import type { Provider, ProviderCreateRequest, ProviderInstance, ProviderStatus } from '../types.js';
import { INSTANCE_ENV, instanceEnv, templateEnv, type InstanceEnvSpec } from './environment.js';
import { buildAgentConfig } from './agent-config.js';
import { hasErrorCode } from './files.js';
import { InstanceStore, readPidFile, type InstanceMeta, type LocalInstancePaths } from './instance-store.js';
import { readNotice } from './notice.js';
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

interface LiveProcess {
  pid: number;
  pgid: number;
  stat: ProcStat;
}

const POLL_MS = 50;
/** How long to wait for processes to vanish after SIGKILL before reporting a (retryable) failure. */
const AFTER_KILL_WAIT_MS = 5_000;
const noopLogger: Logger = { debug: () => undefined, info: () => undefined, warn: () => undefined, error: () => undefined };

export class LocalProvider implements Provider {
  readonly kind = 'local';
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
  private readonly store: InstanceStore;
  private sweepTimer: TimerHandle | undefined;
  private sweeping: Promise<void> | undefined;
  private running = false;

  constructor(options: LocalProviderOptions) {
    if (!hasProcFs()) throw new Error('local provider: needs /proc (Linux)');
    if (options.agentCommand.length === 0 || !options.agentCommand[0]) throw new Error('local provider: agentCommand must not be empty');
    this.agentCommand = [...options.agentCommand];
    this.killGraceMs = options.killGracePeriodMs ?? 10_000;
    this.clock = options.clock;
    this.log = options.logger ?? noopLogger;
    this.sweepMs = options.noticeSweepMs ?? 1_000;
    this.deadRetentionMs = options.deadRetentionMs ?? 10 * 60_000;
    this.ownPgrp = readProcStat(process.pid)?.pgrp ?? -1;
    this.mayMutate = options.mayMutate ?? (() => true);
    this.store = new InstanceStore(options.stateDir, this.clock);
    this.store.ensureStateDir();
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
    const paths = this.store.paths(req.idempotencyKey);
    const id = req.idempotencyKey;
    const agentConfig = buildAgentConfig(req, paths);
    const envSpec = templateEnv(req.template, id);
    return this.locked(id, async () => {
      this.fence(`local provider create ${id}`);
      this.store.ensureStateDir();
      const fresh = this.store.makeFolder(id, paths);
      if (!fresh) {
        const meta = this.store.readMeta(paths);
        if (meta) {
          const live = this.findProcess(paths, meta);
          if (live) {
            this.log.debug({ providerId: id, pid: live.pid }, 'local instance already exists');
            return { providerId: id, status: statusOf(live.stat), tags: { ...meta.tags } };
          }
          if (this.store.wasStarted(paths, meta)) {
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
        createdAt: (fresh ? undefined : this.store.readMeta(paths)?.createdAt) ?? this.clock.now().toISOString(),
      };
      this.store.writeAgentConfig(paths, agentConfig);
      this.store.writeMeta(paths, meta);
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
      this.store.writeMeta(paths, started);
      this.log.info({ providerId: id, pid }, 'local instance started');
      return { providerId: id, status: stat && !isExited(stat) ? statusOf(stat) : 'terminated', tags: { ...meta.tags } };
    });
  }

  async delete(providerId: string): Promise<void> {
    const paths = this.store.pathsOrNotFound(providerId);
    await this.locked(providerId, async () => {
      this.fence(`local provider delete ${providerId}`);
      const meta = this.store.readMeta(paths);
      if (!meta) {
        this.store.removeFolder(paths);
        throw new InstanceNotFoundError(providerId);
      }
      const live = this.findProcess(paths, meta);
      if (!live) {
        await this.killStragglers(providerId, meta.pgid);
        this.store.removeFolder(paths);
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
      this.store.removeFolder(paths);
      this.log.info({ providerId }, 'local instance deleted');
    });
  }

  async status(providerId: string): Promise<ProviderStatus> {
    const paths = this.store.pathsOrNotFound(providerId);
    const meta = this.store.readMeta(paths);
    if (!meta) throw new InstanceNotFoundError(providerId);
    const live = this.findProcess(paths, meta);
    if (!live) {
      this.store.markDead(paths);
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
    const paths = this.store.pathsOrNotFound(providerId);
    // Read-modify-write with no await in between: atomic with respect to this process.
    const meta = this.store.readMeta(paths);
    if (!meta || !this.findProcess(paths, meta)) throw new InstanceNotFoundError(providerId);
    this.fence(`local provider setTags ${providerId}`);
    this.store.writeMeta(paths, { ...meta, tags: { ...meta.tags, ...tags } });
  }

  // ---- the sweep ---------------------------------------------------------------------------

  /** One pass of the sweep: deletes instances whose termination notice is due, collects dead folders. */
  async sweep(): Promise<void> {
    if (!this.mayMutate()) return; // a replica that does not lead leaves the instances alone
    const nowMs = this.clock.nowMs();
    for await (const { id } of this.liveInstances()) {
      const notice = readNotice(this.store.stateDir, id);
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
    for (const id of this.store.instanceIds()) {
      const paths = this.store.paths(id);
      const meta = this.store.readMeta(paths);
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
    if (this.store.recordAdoptedProcess(paths, chosen)) this.log.info({ providerId: meta.providerId, pid: chosen.pid }, 'adopted local instance process');
    return { pid: chosen.pid, pgid: chosen.pgrp, stat: chosen };
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

  /** Marks a dead instance; removes its folder (and any leftover process) once retention has passed. */
  private async collectDead(id: string, paths: LocalInstancePaths, meta: InstanceMeta): Promise<void> {
    const marked = this.store.markDead(paths) ?? meta;
    const since = marked.deadSince ? Date.parse(marked.deadSince) : NaN;
    if (Number.isNaN(since) || this.clock.nowMs() - since < this.deadRetentionMs) return;
    if (this.locks.has(id)) return; // a create or delete is working on it
    await this.locked(id, async () => {
      const again = this.store.readMeta(paths);
      if (!again || this.findProcess(paths, again)) return;
      await this.killStragglers(id, again.pgid);
      this.store.removeFolder(paths);
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
