/**
 * What the local provider knows about processes, read from Linux's /proc. Everything here is
 * synchronous, cheap (a few small file reads) and never throws for a process that vanished
 * while it was being read: a vanished process reads as `null` / absent.
 */
import { readdirSync, readFileSync } from 'node:fs';

export interface ProcStat {
  pid: number;
  /** Field 3: R, S, D, T (stopped), t (traced), Z (zombie), X (dead), ... */
  state: string;
  /** Field 5: process group id. */
  pgrp: number;
  /** Field 22: start time in clock ticks since boot. With the pid, it names one process for ever. */
  startTime: string;
}

/** Whether this machine has the /proc the local provider needs. */
export function hasProcFs(): boolean {
  return readProcStat(process.pid) !== null;
}

/** Reads /proc/<pid>/stat; null when the process does not exist (or is unreadable). */
export function readProcStat(pid: number): ProcStat | null {
  if (!Number.isInteger(pid) || pid <= 0) return null;
  let text: string;
  try {
    text = readFileSync(`/proc/${pid}/stat`, 'utf8');
  } catch {
    return null;
  }
  return parseProcStat(pid, text);
}

/**
 * Parses the text of /proc/<pid>/stat. Field 2 (comm) is in parentheses and may itself contain
 * spaces and parentheses, so fields are counted from the last ')'.
 */
export function parseProcStat(pid: number, text: string): ProcStat | null {
  const close = text.lastIndexOf(')');
  if (close < 0) return null;
  const rest = text.slice(close + 1).trim().split(/\s+/);
  // rest[0] is field 3 (state); field N is rest[N - 3].
  const state = rest[0];
  const pgrp = Number(rest[5 - 3]);
  const startTime = rest[22 - 3];
  if (!state || !Number.isInteger(pgrp) || startTime === undefined) return null;
  return { pid, state, pgrp, startTime };
}

/** A zombie or dead process has exited; it only waits to be reaped. */
export function isExited(stat: ProcStat): boolean {
  return stat.state === 'Z' || stat.state === 'X' || stat.state === 'x';
}

/** SIGSTOP (T) or stopped under a tracer (t). */
export function isStoppedState(stat: ProcStat): boolean {
  return stat.state === 'T' || stat.state === 't';
}

/** Whether the process was started with `name=value` in its environment. False when unreadable. */
export function processHasEnv(pid: number, name: string, value: string): boolean {
  let env: Buffer;
  try {
    env = readFileSync(`/proc/${pid}/environ`);
  } catch {
    return false;
  }
  const wanted = Buffer.from(`${name}=${value}\0`);
  // Each entry is NUL-terminated; match at the start or right after a NUL.
  if (env.subarray(0, wanted.length).equals(wanted)) return true;
  return env.includes(Buffer.concat([Buffer.from([0]), wanted]));
}

/** Every pid in /proc. */
export function allPids(): number[] {
  let names: string[];
  try {
    names = readdirSync('/proc');
  } catch {
    return [];
  }
  const out: number[] = [];
  for (const name of names) {
    if (/^\d+$/.test(name)) out.push(Number(name));
  }
  return out;
}

/** Live (not exited) processes of process group `pgrp`. */
export function groupMembers(pgrp: number): ProcStat[] {
  const out: ProcStat[] = [];
  for (const pid of allPids()) {
    const stat = readProcStat(pid);
    if (stat && stat.pgrp === pgrp && !isExited(stat)) out.push(stat);
  }
  return out;
}

/** Live processes started with `name=value` in their environment (whatever their group). */
export function processesWithEnv(name: string, value: string): ProcStat[] {
  const out: ProcStat[] = [];
  for (const pid of allPids()) {
    if (pid === process.pid) continue;
    if (!processHasEnv(pid, name, value)) continue;
    const stat = readProcStat(pid);
    if (stat && !isExited(stat)) out.push(stat);
  }
  return out;
}

/** Sends `signal` to a process group; false when the group no longer exists. Never throws. */
export function signalGroup(pgrp: number, signal: NodeJS.Signals): boolean {
  if (!Number.isInteger(pgrp) || pgrp <= 1) return false;
  try {
    process.kill(-pgrp, signal);
    return true;
  } catch {
    return false;
  }
}

/** Sends `signal` to one process; false when it no longer exists. Never throws. */
export function signalProcess(pid: number, signal: NodeJS.Signals): boolean {
  if (!Number.isInteger(pid) || pid <= 1) return false;
  try {
    process.kill(pid, signal);
    return true;
  } catch {
    return false;
  }
}
