/**
 * Machine tools some tests need (etcd, promtool, prometheus, chromium, openssl, systemd-analyze), and one rule for when one is missing:
 *
 * - present: the tests run;
 * - absent with DROVER_REQUIRE_TOOLS=1 (`.ci/run` sets it): the tests fail, naming the Debian
 *   package to install, so that a CI machine without the tool cannot pass by skipping them;
 * - absent otherwise: the tests are skipped with a warning on stderr that names the package.
 *
 * Nothing else (CI=true, for one) changes the rule. The packages are the ones `.ci/run` installs.
 */
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { describe, it } from 'vitest';

export interface Tool {
  /** The command the tests run. */
  name: string;
  /** The Debian package that provides it (what `.ci/run` installs when it is missing). */
  debianPackage: string;
  /** Its path on this machine, or null. */
  find(): string | null;
}

/** The path `command -v` gives for `command`, or null. */
export function onPath(command: string): string | null {
  const res = spawnSync('sh', ['-c', 'command -v "$1"', 'sh', command], { encoding: 'utf8' });
  const path = res.stdout?.trim() ?? '';
  return res.status === 0 && path ? path : null;
}

export const ETCD_TOOL: Tool = { name: 'etcd', debianPackage: 'etcd-server', find: () => onPath('etcd') };

export const PROMTOOL_TOOL: Tool = { name: 'promtool', debianPackage: 'prometheus', find: () => onPath('promtool') };

/** The Prometheus server itself (the autoscale e2e test runs one); the same package as promtool. */
export const PROMETHEUS_TOOL: Tool = { name: 'prometheus', debianPackage: 'prometheus', find: () => onPath('prometheus') };

/** Checks the systemd units in deploy/systemd (`systemd-analyze verify`). */
export const SYSTEMD_ANALYZE_TOOL: Tool = { name: 'systemd-analyze', debianPackage: 'systemd', find: () => onPath('systemd-analyze') };

/** Makes the certificates of the TLS tests (test/helpers/certs.ts, test/cli/tls-fixture.ts). */
export const OPENSSL_TOOL: Tool = { name: 'openssl', debianPackage: 'openssl', find: () => onPath('openssl') };

export const CHROMIUM_TOOL: Tool = {
  name: 'chromium',
  debianPackage: 'chromium',
  // CHROMIUM_PATH first: a machine may have it elsewhere (or under another name).
  find: () => {
    for (const path of [process.env.CHROMIUM_PATH, '/usr/bin/chromium', '/usr/bin/chromium-browser']) if (path && existsSync(path)) return path;
    return onPath('chromium') ?? onPath('chromium-browser');
  },
};

/** What becomes of the tests that need a tool: the rule above, for a tool found or not. */
export function toolRule(present: boolean, env: NodeJS.ProcessEnv = process.env): 'run' | 'fail' | 'skip' {
  if (present) return 'run';
  return env.DROVER_REQUIRE_TOOLS === '1' ? 'fail' : 'skip';
}

const found = new Map<string, string | null>();

/** The tool's path, or null when this machine has none (looked up once per test file). */
export function findTool(tool: Tool): string | null {
  if (!found.has(tool.name)) found.set(tool.name, tool.find());
  return found.get(tool.name) ?? null;
}

/** Why a test that needs `tool` cannot run, and how to fix it. */
export function missingToolMessage(tool: Tool): string {
  const env = tool === CHROMIUM_TOOL ? ' (or set CHROMIUM_PATH)' : '';
  return `${tool.name} is not installed: install the Debian package ${tool.debianPackage} (apt-get install ${tool.debianPackage})${env}`;
}

function warnSkipped(tool: Tool, title: string): void {
  const bar = '!'.repeat(100);
  console.warn(`\n${bar}\n!!! SKIPPED "${title}": ${missingToolMessage(tool)}.\n!!! With DROVER_REQUIRE_TOOLS=1 (as .ci/run sets) this is a failure.\n${bar}\n`);
}

function requiredError(tool: Tool): Error {
  return new Error(`${missingToolMessage(tool)}. DROVER_REQUIRE_TOOLS=1: tests that need ${tool.name} fail without it (.ci/run installs it when it runs as root).`);
}

/** A suite's body and options, in either order (as vitest's `describe` takes them). */
export type SuiteArgs = [fn: () => void, options?: { timeout?: number }] | [options: { timeout?: number }, fn: () => void];

/** `describe` for tests that need `tool`: run, failed or skipped by the rule above. */
export function describeWithTool(tool: Tool, title: string, ...args: SuiteArgs): void {
  const [fn, options] = typeof args[0] === 'function' ? [args[0], args[1] as { timeout?: number } | undefined] : [args[1] as () => void, args[0]];
  const rule = toolRule(findTool(tool) !== null);
  if (rule === 'run') {
    describe(title, options ?? {}, fn);
  } else if (rule === 'fail') {
    describe(title, () => {
      it(`needs ${tool.name}`, () => {
        throw requiredError(tool);
      });
    });
  } else {
    warnSkipped(tool, title);
    describe.skip(title, fn);
  }
}

/** `it` for one test that needs `tool`: run, failed or skipped by the rule above. */
export function itWithTool(tool: Tool, title: string, fn: () => Promise<void> | void, timeout?: number): void {
  const rule = toolRule(findTool(tool) !== null);
  if (rule === 'run') {
    it(title, fn, timeout);
  } else if (rule === 'fail') {
    it(title, () => {
      throw requiredError(tool);
    });
  } else {
    warnSkipped(tool, title);
    it.skip(title, fn);
  }
}
