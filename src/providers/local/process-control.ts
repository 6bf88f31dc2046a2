/**
 * The processes of local instances: starting an agent detached, finding an instance's live
 * process (by recorded pid and start time, else by the pid file or the DROVER_INSTANCE_ID every
 * process of an instance carries), and stopping a process group with a grace period before
 * SIGKILL. It never signals the server's own process group, whatever a state file says.
 * Waits are polls on the injected clock; the facts come from /proc (proc.ts).
 */
import { spawn } from 'node:child_process';
import { closeSync, openSync } from 'node:fs';
import type { Clock } from '../../clock/index.js';
import { doing, PermanentError, ProviderError } from '../../errors/index.js';
import type { Logger } from '../../logging/index.js';
import { INSTANCE_ENV, instanceEnv, type InstanceEnvSpec } from './environment.js';
import { hasErrorCode } from './files.js';
import { readPidFile, type LocalInstancePaths } from './instance-store.js';
import { groupMembers, isExited, processesWithEnv, processHasEnv, readProcStat, signalGroup, signalProcess, type ProcStat } from './proc.js';

/** The leader process of a live instance and its process group. */
export interface LiveProcess {
  pid: number;
  pgid: number;
  stat: ProcStat;
}

/** What meta.json recorded of the process a provider started. */
export interface RecordedProcess {
  pid: number;
  pgid?: number;
  startTime?: string;
}

const POLL_MS = 50;
/** How long to wait for processes to vanish after SIGKILL before reporting a (retryable) failure. */
const AFTER_KILL_WAIT_MS = 5_000;

export class InstanceProcesses {
  /** The server's own process group: never signalled, and never taken for an instance's. */
  private readonly ownPgrp: number;

  constructor(
    private readonly clock: Clock,
    private readonly log: Logger,
  ) {
    this.ownPgrp = readProcStat(process.pid)?.pgrp ?? -1;
  }

  /**
   * Starts `agentCommand --config <agent.json>` detached (its own session and process group, so
   * it outlives the server), in the instance's folder, with the instance's environment and its
   * log as stdout and stderr. Returns its pid. A command that cannot run at all (ENOENT, EACCES)
   * is a PermanentError; other spawn failures are retryable.
   */
  async spawnAgent(agentCommand: readonly [string, ...string[]], id: string, paths: LocalInstancePaths, envSpec: InstanceEnvSpec): Promise<number> {
    const [command, ...args] = agentCommand;
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
      if (hasErrorCode(err, 'ENOENT') || hasErrorCode(err, 'EACCES')) throw new PermanentError(new ProviderError(msg, { retryable: false, cause: err }));
      throw new ProviderError(msg, { retryable: true, cause: err });
    }
    child.on('error', (err) => this.log.warn({ providerId: id, err: err.message }, 'local instance process error'));
    child.unref();
    return pid;
  }

  /**
   * The recorded process if it still lives: the start time must match (the pid may have been
   * reused) and it must not be a zombie. Without a recorded start time nothing can be trusted.
   */
  recorded(recorded: RecordedProcess): LiveProcess | null {
    if (recorded.startTime === undefined) return null;
    const stat = readProcStat(recorded.pid);
    if (!stat || stat.startTime !== recorded.startTime || isExited(stat)) return null;
    return { pid: recorded.pid, pgid: recorded.pgid ?? recorded.pid, stat };
  }

  /**
   * The live process of an instance whose pid was never recorded (the server died before it
   * could): the one named in the agent's pid file, else any carrying the instance id (a group
   * leader first). Its group leader is preferred when it carries the id too. Null when none is
   * found, or when the one found is in the server's own group.
   */
  findUnrecorded(instanceId: string, pidFile: string): ProcStat | null {
    let stat: ProcStat | null = null;
    const filePid = readPidFile(pidFile);
    if (filePid !== null) {
      const s = readProcStat(filePid);
      if (s && !isExited(s) && processHasEnv(filePid, INSTANCE_ENV, instanceId)) stat = s;
    }
    if (!stat) {
      const carriers = processesWithEnv(INSTANCE_ENV, instanceId);
      stat = carriers.find((c) => c.pid === c.pgrp) ?? carriers[0] ?? null;
    }
    if (!stat || stat.pgrp === this.ownPgrp) return null;
    const leader = readProcStat(stat.pgrp);
    return leader && !isExited(leader) && processHasEnv(leader.pid, INSTANCE_ENV, instanceId) ? leader : stat;
  }

  /**
   * Stops an instance's process group: SIGTERM and SIGCONT, then SIGKILL if it outlives
   * `graceMs`. `beforeKill` runs before SIGKILL and throws to call it off (the server may have
   * stopped leading during the grace period). Returns whether the group is gone.
   */
  async stopGroup(providerId: string, pgid: number, graceMs: number, beforeKill: () => void): Promise<boolean> {
    // A stopped group does not act on SIGTERM until continued: send both.
    this.signalInstanceGroup(pgid, 'SIGTERM');
    this.signalInstanceGroup(pgid, 'SIGCONT');
    let gone = await this.waitUntil(() => this.groupGone(pgid), graceMs);
    if (!gone) {
      beforeKill();
      this.log.warn({ providerId, pgid, graceMs }, 'local instance outlived its grace period; killing');
      this.signalInstanceGroup(pgid, 'SIGKILL');
      gone = await this.waitUntil(() => this.groupGone(pgid), AFTER_KILL_WAIT_MS);
    }
    return gone;
  }

  /**
   * SIGKILLs what remains of an instance whose leader is gone: the rest of its process group (if
   * a member still carries the instance id; otherwise the group id may belong to someone else)
   * and any process carrying the instance id that left the group.
   */
  async killStragglers(id: string, pgid: number | undefined): Promise<void> {
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

  private groupGone(pgid: number): boolean {
    return groupMembers(pgid).length === 0;
  }

  private signalInstanceGroup(pgid: number, signal: NodeJS.Signals): void {
    if (pgid === this.ownPgrp) return; // never signal the server's own group
    signalGroup(pgid, signal);
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
}
