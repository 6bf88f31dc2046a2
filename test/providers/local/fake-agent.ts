/**
 * A stand-in for the Drover agent, for LocalProvider tests. Written as a CommonJS script into
 * the test's temp folder and run with `node <script> --config <dir>/agent.json`. It:
 * - reads its config and writes `pidFile` (as the real agent does);
 * - writes `<dir>/env.json` with the DROVER_INSTANCE_ID it was started with;
 * - starts a child in its own process group (not detached) and writes `<dir>/child.pid`;
 * - ignores SIGTERM when its config's `command` contains "ignore-sigterm" (writing `<dir>/sigterm`
 *   when one arrives);
 * - writes `<dir>/ready` last, and then stays alive.
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach } from 'vitest';
import { SystemClock } from '../../../src/clock/index.js';
import { LocalProvider, type LocalProviderOptions } from '../../../src/providers/local/index.js';
import { processesWithEnv } from '../../../src/providers/local/proc.js';

const SOURCE = String.raw`
'use strict';
const fs = require('node:fs');
const path = require('node:path');
const { spawn } = require('node:child_process');
const configPath = process.argv[process.argv.indexOf('--config') + 1];
const config = JSON.parse(fs.readFileSync(configPath, 'utf8'));
const dir = path.dirname(configPath);
if (config.pidFile) fs.writeFileSync(config.pidFile, process.pid + '\n');
fs.writeFileSync(path.join(dir, 'env.json'), JSON.stringify({ DROVER_INSTANCE_ID: process.env.DROVER_INSTANCE_ID, pid: process.pid }));
if ((config.command || []).includes('ignore-sigterm')) process.on('SIGTERM', () => fs.writeFileSync(path.join(dir, 'sigterm'), 'ignored'));
const child = spawn(process.execPath, ['-e', 'setInterval(() => {}, 1e6)'], { stdio: 'ignore' });
fs.writeFileSync(path.join(dir, 'child.pid'), String(child.pid));
console.log('fake agent started');
fs.writeFileSync(path.join(dir, 'ready'), 'ok');
setInterval(() => {}, 1e6);
`;

/** Writes the fake agent into `dir`; returns the argv prefix that runs it. */
export function writeFakeAgent(dir: string): string[] {
  const script = join(dir, 'fake-agent.cjs');
  writeFileSync(script, SOURCE);
  return [process.execPath, script];
}

/** Per-test set-up shared by the LocalProvider test files: a temp folder, the fake agent, cleanup. */
export interface LocalProviderFixture {
  readonly root: string;
  readonly stateDir: string;
  readonly agentCommand: string[];
  /** A provider on this test's state folder (closed after the test). */
  provider(options?: Partial<LocalProviderOptions>): LocalProvider;
  /** Remembers an instance id: every process carrying it is killed after the test. */
  track(instanceId: string): void;
}

export function useLocalProviderFixture(prefix: string): LocalProviderFixture {
  const clock = new SystemClock();
  const providers: LocalProvider[] = [];
  const ids = new Set<string>();
  let root = '';
  let agentCommand: string[] = [];
  beforeEach(() => {
    root = mkdtempSync(join(tmpdir(), prefix));
    agentCommand = writeFakeAgent(root);
  });
  afterEach(async () => {
    for (const p of providers.splice(0)) await p.close();
    // Whatever a test left running dies here: every process of an instance carries its id.
    for (const id of ids) {
      for (const p of processesWithEnv('DROVER_INSTANCE_ID', id)) {
        try {
          process.kill(p.pid, 'SIGKILL');
        } catch {
          // gone already
        }
      }
    }
    ids.clear();
    rmSync(root, { recursive: true, force: true });
  });
  return {
    get root() {
      return root;
    },
    get stateDir() {
      return join(root, 'state');
    },
    get agentCommand() {
      return agentCommand;
    },
    provider(options = {}) {
      const p = new LocalProvider({ stateDir: join(root, 'state'), agentCommand, clock, killGracePeriodMs: 5_000, ...options });
      providers.push(p);
      return p;
    },
    track(instanceId) {
      ids.add(instanceId);
    },
  };
}
