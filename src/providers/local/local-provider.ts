/**
 * LocalProvider: a real provider whose instances are process trees on this machine (Linux: it
 * reads /proc). Each instance is the Drover agent, started detached in its own session and
 * process group, with the workload the agent supervises under it. It outlives the server that
 * created it, and a restarted server adopts it again from the state folder.
 *
 * This file is the Provider contract; the parts it composes are:
 * - instance-store.ts   the state folder: one folder per instance (meta.json, agent.json, ...).
 * - agent-config.ts     the agent's config, from the request's user data and the template.
 * - environment.ts      the environment instances get: an allow-list, plus template passEnv/env.
 * - process-control.ts  spawning the agent, finding an instance's process, stopping its group.
 * - notice.ts           termination notices and the sweep that honours them.
 * - util/keyed-lock.ts  per-instance serialisation of create, delete and dead-folder collection.
 *
 * The provider id is the folder name, which is the idempotency key (the Drover instance id).
 * An instance's server addresses and credential reach its agent in `agent.json`, not in the
 * environment, which is an allow-list (see environment.ts).
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
import type { Clock } from '../../clock/index.js';
import { InstanceNotFoundError, NotLeaderError, ProviderError, SettingError } from '../../errors/index.js';
import type { Logger } from '../../logging/index.js';
import type { Provider, ProviderCreateRequest, ProviderInstance, ProviderStatus } from '../types.js';
import { buildAgentConfig } from './agent-config.js';
import { templateEnv, type InstanceEnvSpec } from './environment.js';
import { InstanceStore, type InstanceMeta, type LocalInstancePaths } from './instance-store.js';
import { KeyedLock } from '../../util/keyed-lock.js';
import { NoticeSweep } from './notice.js';
import { hasProcFs, isExited, isStoppedState, readProcStat, type ProcStat } from './proc.js';
import { InstanceProcesses, type LiveProcess } from './process-control.js';

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

const noopLogger: Logger = { debug: () => undefined, info: () => undefined, warn: () => undefined, error: () => undefined };

export class LocalProvider implements Provider {
  readonly kind = 'local';
  private readonly agentCommand: readonly [string, ...string[]];
  private readonly killGraceMs: number;
  private readonly clock: Clock;
  private readonly log: Logger;
  private readonly deadRetentionMs: number;
  private readonly mayMutate: () => boolean;
  private readonly store: InstanceStore;
  private readonly processes: InstanceProcesses;
  /** Serialises create, delete and dead-folder collection of the same instance. */
  private readonly locks = new KeyedLock();
  private readonly noticeSweep: NoticeSweep;

  constructor(options: LocalProviderOptions) {
    if (!hasProcFs()) throw new SettingError('starting the local provider: it needs /proc (Linux)');
    const [command, ...args] = options.agentCommand;
    if (!command) throw new SettingError('starting the local provider: agentCommand must not be empty');
    this.agentCommand = [command, ...args];
    this.killGraceMs = options.killGracePeriodMs ?? 10_000;
    this.clock = options.clock;
    this.log = options.logger ?? noopLogger;
    this.deadRetentionMs = options.deadRetentionMs ?? 10 * 60_000;
    this.mayMutate = options.mayMutate ?? (() => true);
    this.store = new InstanceStore(options.stateDir, this.clock);
    this.processes = new InstanceProcesses(this.clock, this.log);
    this.noticeSweep = new NoticeSweep({
      stateDir: options.stateDir,
      clock: this.clock,
      log: this.log,
      periodMs: options.noticeSweepMs ?? 1_000,
      mayMutate: () => this.mayMutate(),
      liveInstances: () => this.liveInstances(),
      deleteInstance: (id) => this.delete(id),
    });
    this.store.ensureStateDir();
  }

  // ---- lifecycle ---------------------------------------------------------------------------

  /** Starts the periodic sweep (termination notices, removal of expired dead folders). */
  start(): void {
    this.noticeSweep.start();
  }

  /** Stops the sweep and waits for a sweep in progress. Instances keep running. */
  async close(): Promise<void> {
    await this.noticeSweep.close();
  }

  /** One pass of the sweep: deletes instances whose termination notice is due, collects dead folders. */
  async sweep(): Promise<void> {
    await this.noticeSweep.runOnce();
  }

  // ---- the Provider API --------------------------------------------------------------------

  async create(req: ProviderCreateRequest): Promise<ProviderInstance> {
    const paths = this.store.paths(req.idempotencyKey);
    const id = req.idempotencyKey;
    // Both refuse bad requests before anything is created.
    const agentConfig = buildAgentConfig(req, paths);
    const envSpec = templateEnv(req.template, id);
    return this.locks.run(id, async () => {
      this.fence(`local provider create ${id}`);
      this.store.ensureStateDir();
      const fresh = this.store.makeFolder(id, paths);
      if (!fresh) {
        const existing = this.existingInstance(id, paths);
        if (existing) return existing;
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
      return this.startAgent(paths, meta, envSpec);
    });
  }

  async delete(providerId: string): Promise<void> {
    const paths = this.store.pathsOrNotFound(providerId);
    await this.locks.run(providerId, async () => {
      this.fence(`local provider delete ${providerId}`);
      const meta = this.store.readMeta(paths);
      if (!meta) {
        this.store.removeFolder(paths);
        throw new InstanceNotFoundError(providerId);
      }
      const live = this.findProcess(paths, meta);
      if (!live) {
        await this.processes.killStragglers(providerId, meta.pgid);
        this.store.removeFolder(paths);
        this.log.info({ providerId }, 'removed folder of a local instance that was already gone');
        throw new InstanceNotFoundError(providerId);
      }
      this.log.info({ providerId, pid: live.pid, pgid: live.pgid }, 'deleting local instance');
      const gone = await this.processes.stopGroup(providerId, live.pgid, this.killGraceMs, () => this.fence(`local provider delete ${providerId}`));
      if (!gone) throw new ProviderError(`local provider delete ${providerId}: processes of group ${live.pgid} survived SIGKILL`);
      await this.processes.killStragglers(providerId, undefined);
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

  // ---- composition -------------------------------------------------------------------------

  /**
   * For create on a folder that already exists: the instance as it is when it was started before
   * (live, or `terminated` once its process is gone, never started twice); null when it was never
   * started, or the folder has no meta (a crash between mkdir and spawn), so create starts it.
   */
  private existingInstance(id: string, paths: LocalInstancePaths): ProviderInstance | null {
    const meta = this.store.readMeta(paths);
    if (!meta) return null;
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
    return null;
  }

  /** Spawns the agent of an instance whose files are written, and records its process in meta. */
  private async startAgent(paths: LocalInstancePaths, meta: InstanceMeta, envSpec: InstanceEnvSpec): Promise<ProviderInstance> {
    const id = meta.providerId;
    const pid = await this.processes.spawnAgent(this.agentCommand, id, paths, envSpec);
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

  /**
   * The live leader process of the instance, or null. With a recorded pid, that process if it
   * still lives. Without one (the server died before recording it), a process carrying the
   * instance id is searched for; one found is adopted: recorded in meta.json.
   */
  private findProcess(paths: LocalInstancePaths, meta: InstanceMeta): LiveProcess | null {
    if (meta.pid !== undefined) return this.processes.recorded({ pid: meta.pid, pgid: meta.pgid, startTime: meta.startTime });
    const found = this.processes.findUnrecorded(meta.providerId, paths.pidFile);
    if (!found) return null;
    if (this.store.recordAdoptedProcess(paths, found)) this.log.info({ providerId: meta.providerId, pid: found.pid }, 'adopted local instance process');
    return { pid: found.pid, pgid: found.pgrp, stat: found };
  }

  /** Marks a dead instance; removes its folder (and any leftover process) once retention has passed. */
  private async collectDead(id: string, paths: LocalInstancePaths, meta: InstanceMeta): Promise<void> {
    const marked = this.store.markDead(paths) ?? meta;
    const since = marked.deadSince ? Date.parse(marked.deadSince) : NaN;
    if (Number.isNaN(since) || this.clock.nowMs() - since < this.deadRetentionMs) return;
    if (this.locks.isBusy(id)) return; // a create or delete is working on it
    await this.locks.run(id, async () => {
      const again = this.store.readMeta(paths);
      if (!again || this.findProcess(paths, again)) return;
      await this.processes.killStragglers(id, again.pgid);
      this.store.removeFolder(paths);
      this.log.info({ providerId: id }, 'removed folder of a dead local instance');
    });
  }

  /** Throws NotLeaderError when this process may not change instances now. */
  private fence(action: string): void {
    if (!this.mayMutate()) throw new NotLeaderError(action);
  }
}

function statusOf(stat: ProcStat): ProviderStatus {
  return isStoppedState(stat) ? 'stopped' : 'running';
}
