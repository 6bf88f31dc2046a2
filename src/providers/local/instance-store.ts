/**
 * The local provider's state on disk: one folder per instance, `<stateDir>/<instanceId>/`, named
 * by the Drover instance id (which is also the idempotency key and the provider id):
 * - `meta.json`   providerId, idempotencyKey, tags, template, createdAt; once started pid, pgid,
 *                 startedAt and the process start time (/proc/<pid>/stat field 22), which guards
 *                 against pid reuse; `deadSince` once the process was seen gone.
 * - `agent.json`  the agent's config (src/agent/config.ts), mode 0600: it holds the credential.
 * - `agent.log`   stdout and stderr of the agent and its workload (appended to).
 * - `agent.pid`   written by the agent at start.
 * - `notice.json` a termination notice `{ "terminateAt": ISO }` (see notice.ts).
 * - `agent.sock`  the agent's self-service socket (`drover self ...`), created by the agent.
 *
 * The folder is mode 0700 and every file written in it 0600: the agent config holds a credential,
 * and instances run as the server's user, so the modes are what keeps other users out.
 * Nothing here looks at processes; the start time it records is read by process-control.ts.
 */
import { chmodSync, existsSync, mkdirSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import type { AgentConfig } from '../../agent/config.js';
import type { Clock } from '../../clock/index.js';
import type { TemplateSpec } from '../../config/index.js';
import { doing, InstanceNotFoundError, InvalidRequestError, ProviderError } from '../../errors/index.js';
import { hasErrorCode, readJsonFile, writeFileAtomic } from './files.js';
import type { ProcStat } from './proc.js';

/** Paths of one instance's state. */
export interface LocalInstancePaths {
  dir: string;
  meta: string;
  agentConfig: string;
  log: string;
  notice: string;
  pidFile: string;
}

/** The contents of `meta.json`. */
export interface InstanceMeta {
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

/** Instance ids are folder names: no separators, no leading dot, bounded length. */
const ID_PATTERN = /^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$/;

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

/** The pid the agent wrote at start, or null when there is no (sensible) one. */
export function readPidFile(path: string): number | null {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch {
    return null;
  }
  const pid = Number(text.trim());
  return Number.isInteger(pid) && pid > 1 ? pid : null;
}

/** The instance folders under one state folder, and the files the provider writes in them. */
export class InstanceStore {
  constructor(
    readonly stateDir: string,
    private readonly clock: Clock,
  ) {}

  /** Creates the state folder (0700) if absent; it may have been removed while the server ran. */
  ensureStateDir(): void {
    mkdirSync(this.stateDir, { recursive: true, mode: 0o700 });
  }

  paths(instanceId: string): LocalInstancePaths {
    return localInstancePaths(this.stateDir, instanceId);
  }

  /** The paths of an instance named by a caller; an id that cannot be one is simply not found. */
  pathsOrNotFound(providerId: string): LocalInstancePaths {
    try {
      return this.paths(providerId);
    } catch {
      throw new InstanceNotFoundError(providerId);
    }
  }

  /** The ids of every instance folder (live, dead, or never started). */
  instanceIds(): string[] {
    let entries;
    try {
      entries = readdirSync(this.stateDir, { withFileTypes: true });
    } catch {
      return [];
    }
    return entries.filter((e) => e.isDirectory() && ID_PATTERN.test(e.name)).map((e) => e.name);
  }

  /**
   * Creates the instance's folder; false when it already existed (an earlier create got that far).
   * Either way it ends up exactly 0700, whatever the umask, and for a folder an older version left
   * more open.
   */
  makeFolder(id: string, paths: LocalInstancePaths): boolean {
    let fresh = true;
    try {
      mkdirSync(paths.dir, { mode: 0o700 });
    } catch (err) {
      if (!hasErrorCode(err, 'EEXIST')) throw new ProviderError(doing(`local provider create ${id}`, err), { retryable: true, cause: err });
      fresh = false;
    }
    chmodSync(paths.dir, 0o700);
    return fresh;
  }

  removeFolder(paths: LocalInstancePaths): void {
    rmSync(paths.dir, { recursive: true, force: true });
  }

  /** meta.json, or null when it is absent or not a meta file (a crash before it was written). */
  readMeta(paths: LocalInstancePaths): InstanceMeta | null {
    const raw = readJsonFile(paths.meta);
    if (!raw || typeof raw !== 'object') return null;
    const m = raw as Partial<InstanceMeta>;
    if (typeof m.providerId !== 'string' || typeof m.idempotencyKey !== 'string' || typeof m.createdAt !== 'string' || !m.tags || typeof m.tags !== 'object') return null;
    return m as InstanceMeta;
  }

  writeMeta(paths: LocalInstancePaths, meta: InstanceMeta): void {
    writeFileAtomic(paths.meta, `${JSON.stringify(meta, null, 2)}\n`, 0o600);
  }

  writeAgentConfig(paths: LocalInstancePaths, config: AgentConfig): void {
    writeFileAtomic(paths.agentConfig, `${JSON.stringify(config, null, 2)}\n`, 0o600);
  }

  /** Whether the instance was ever started: a pid was recorded, or the agent wrote its pid file. */
  wasStarted(paths: LocalInstancePaths, meta: InstanceMeta): boolean {
    return meta.pid !== undefined || existsSync(paths.pidFile);
  }

  /** Records the first time the instance was seen without a live process. */
  markDead(paths: LocalInstancePaths): InstanceMeta | null {
    const meta = this.readMeta(paths);
    if (!meta || meta.deadSince) return meta;
    const marked = { ...meta, deadSince: this.clock.now().toISOString() };
    this.writeMeta(paths, marked);
    return marked;
  }

  /**
   * Records `adopted` as the instance's when meta.json has no pid yet (the server died between
   * spawn and recording it); false when a pid is recorded by now. Re-reads and writes meta with no
   * await in between, so a concurrent tag write is not lost.
   */
  recordAdoptedProcess(paths: LocalInstancePaths, adopted: ProcStat): boolean {
    const current = this.readMeta(paths);
    if (!current || current.pid !== undefined) return false;
    const { deadSince: _dead, ...rest } = current;
    this.writeMeta(paths, { ...rest, pid: adopted.pid, pgid: adopted.pgrp, startTime: adopted.startTime, startedAt: rest.startedAt ?? this.clock.now().toISOString() });
    return true;
  }
}
