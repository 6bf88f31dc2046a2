/**
 * Runs the built CLI (`dist/cli/main.js`) as a user does: a real process, asynchronously (so
 * servers in the test's own process keep answering it), with a clean DROVER_* environment.
 */
import { spawn } from 'node:child_process';
import { CLI } from '../e2e/process-harness.js';

export interface CliRun {
  status: number | null;
  stdout: string;
  stderr: string;
}

/** The CLI's environment variables a test must not inherit from the shell that runs the suite. */
const CLEARED = ['DROVER_SERVER', 'DROVER_TOKEN', 'DROVER_CA', 'DROVER_CLIENT_CERT', 'DROVER_CLIENT_KEY'];

export function runCli(args: string[], env: Record<string, string> = {}): Promise<CliRun> {
  return new Promise((resolve) => {
    const base: NodeJS.ProcessEnv = { ...process.env };
    for (const name of CLEARED) delete base[name];
    const child = spawn(process.execPath, [CLI, ...args], { env: { ...base, ...env } });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    child.on('close', (status) => resolve({ status, stdout, stderr }));
  });
}
