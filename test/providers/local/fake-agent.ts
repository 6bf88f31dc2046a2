/**
 * A stand-in for the Drover agent, for LocalProvider tests. Written as a CommonJS script into
 * the test's temp folder and run with `node <script> --config <dir>/agent.json`. It:
 * - reads its config and writes `pidFile` (as the real agent does);
 * - writes `<dir>/env.json` with the DROVER_INSTANCE_ID it was started with;
 * - starts a child in its own process group (not detached) and writes `<dir>/child.pid`;
 * - ignores SIGTERM when its config's `command` contains "ignore-sigterm";
 * - writes `<dir>/ready` last, and then stays alive.
 */
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';

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
if ((config.command || []).includes('ignore-sigterm')) process.on('SIGTERM', () => {});
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
