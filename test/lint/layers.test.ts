/**
 * The layering rules bite: one planted violation of each (eslint.config.js's import and clock
 * rules, scripts/check-layers.ts's folder cycles) is reported with the rule's message, a clean
 * counterpart is not, and the real tree is clean.
 *
 * The planted files are virtual (`lintText` with a path under src/ or web/), linted with the
 * project's own config minus type information (these rules are syntactic; the type-aware program
 * would cost seconds per file) and only the two rules that carry the layering.
 */
import { resolve } from 'node:path';
import { ESLint } from 'eslint';
import tseslint from 'typescript-eslint';
import { beforeAll, describe, expect, it } from 'vitest';
import { findFolderCycles, folderImportsOf, formatCycles, treeImports, type FolderImport } from '../../scripts/check-layers.js';

const ROOT = resolve(import.meta.dirname, '../..');
const LAYER_RULES = new Set(['no-restricted-imports', 'no-restricted-syntax']);

const RECONCILER = 'Layering: the reconciler (src/reconciler) must not import src/server, src/cli, src/agent, src/app or src/autoscale';
const PROVIDER = 'Layering: a provider (src/providers) must not import the reconciler (src/reconciler)';
const AGENT = 'Layering: the agent (src/agent) must not import the store (src/store) or the reconciler (src/reconciler)';
const WEB = 'Layering: the dashboard (web/) must not import anything outside web/ except src/server/views.ts';
const SCHEDULE = 'Schedule through the injected Clock.';

let eslint: ESLint;

beforeAll(() => {
  eslint = new ESLint({
    cwd: ROOT,
    overrideConfig: [tseslint.configs.disableTypeChecked, { linterOptions: { reportUnusedDisableDirectives: 'off' } }],
    ruleFilter: ({ ruleId }) => LAYER_RULES.has(ruleId),
  });
});

interface Report {
  line: number;
  ruleId: string | null;
  message: string;
}

async function lint(filePath: string, code: string): Promise<Report[]> {
  const [result] = await eslint.lintText(code, { filePath });
  return (result?.messages ?? []).map(({ line, ruleId, message }) => ({ line, ruleId, message }));
}

/** Lints `code` as `filePath` and returns the lines reported with a message starting `rule`. */
async function linesReported(filePath: string, code: string, rule: string): Promise<number[]> {
  const reports = await lint(filePath, code);
  const other = reports.filter((r) => !r.message.includes(rule));
  expect(other, `unexpected reports in ${filePath}`).toEqual([]);
  return reports.map((r) => r.line);
}

describe('directional layering rules (ESLint)', () => {
  it('the reconciler may not import the server, the CLI, the agent, the app or the autoscaler', async () => {
    const code = [
      "import { startHttp } from '../server/http.js';", // 1 flagged
      "import type { GroupView } from '../server/views.js';", // 2 flagged: type-only counts
      "export { runServer } from '../cli/commands/server.js';", // 3 flagged
      "export * from '../agent/protocol.js';", // 4 flagged
      "const app = await import('../app/drover-server.js');", // 5 flagged: dynamic import
      "import type { Autoscaler } from '../autoscale/index.js';", // 6 flagged: the autoscaler drives the reconciler
      "import { KeyedWorkQueue } from '../queue/work-queue.js';", // clean: below the reconciler
      "import { computePlan } from './plan/index.js';", // clean: its own folder
      "import { serverless } from './serverless.js';", // clean: a name that only starts like one
    ].join('\n');
    const reports = await lint('src/reconciler/planted.ts', code);
    expect(reports.map((r) => [r.line, r.message.includes(RECONCILER)])).toEqual([
      [1, true],
      [2, true],
      [3, true],
      [4, true],
      [5, true],
      [6, true],
    ]);
    expect(reports.find((r) => r.line === 1)?.ruleId).toBe('no-restricted-imports');
    expect(reports.find((r) => r.line === 5)?.ruleId).toBe('no-restricted-syntax');
    // From a subfolder, the same rule.
    expect(await linesReported('src/reconciler/plan/planted.ts', "import { x } from '../../server/http.js';\nimport { y } from '../types.js';", RECONCILER)).toEqual([1]);
  });

  it('a provider may not import the reconciler', async () => {
    const code = [
      "import { Reconciler } from '../../reconciler/index.js';", // 1 flagged
      "import type { Plan } from '../../reconciler/plan.js';", // 2 flagged
      "import type { Clock } from '../../clock/index.js';", // clean
      "import { LocalInstanceStore } from './instance-store.js';", // clean
    ].join('\n');
    expect(await linesReported('src/providers/local/planted.ts', code, PROVIDER)).toEqual([1, 2]);
    expect(await linesReported('src/providers/planted.ts', "export * from '../reconciler/index.js';", PROVIDER)).toEqual([1]);
  });

  it('the agent may not import the store or the reconciler', async () => {
    const code = [
      "import { LocalDb } from '../store/index.js';", // 1 flagged
      "import type { ReconcileEvent } from '../reconciler/events.js';", // 2 flagged
      "import type { Clock } from '../clock/index.js';", // clean
      "import { backoffDelayMs } from '../util/backoff.js';", // clean
      "import { AgentConnection } from './connection.js';", // clean
    ].join('\n');
    expect(await linesReported('src/agent/planted.ts', code, AGENT)).toEqual([1, 2]);
  });

  it('the dashboard may import from outside web/ only the view types and the backoff', async () => {
    const code = [
      "import { LocalDb } from '../../src/store/index.js';", // 1 flagged
      "import { toGroupView } from '../../src/server/views.ts';", // 2 flagged: only views.js, as the tree writes it
      "import pkg from '../../package.json';", // 3 flagged
      "const m = await import('../../src/reconciler/index.js');", // 4 flagged: dynamic import
      "import type { GroupView } from '../../src/server/views.js';", // clean
      "import { backoffDelayMs } from '../../src/util/backoff.js';", // clean
      "import { api } from './api.js';", // clean
      "import { render } from 'preact';", // clean: a package
    ].join('\n');
    expect(await linesReported('web/src/planted.ts', code, WEB)).toEqual([1, 2, 3, 4]);
    // Depth is taken into account: from web/ itself one `../` leaves it; from a subfolder, three.
    expect(await linesReported('web/planted.ts', "import { x } from '../src/store/index.js';\nimport { y } from './src/api.js';", WEB)).toEqual([1]);
    const deeper = [
      "import { LocalDb } from '../../../src/store/index.js';", // 1 flagged
      "import type { GroupView } from '../../../src/server/views.js';", // clean
      "import { api } from '../api.js';", // clean: still inside web/
    ].join('\n');
    expect(await linesReported('web/src/parts/planted.tsx', deeper, WEB)).toEqual([1]);
  });
});

describe('the clock rule (ESLint)', () => {
  it('bans setInterval, setImmediate, setTimeout and node:timers in logic code', async () => {
    const code = [
      "import { setTimeout as sleep } from 'node:timers/promises';", // 1 flagged
      'const a = setInterval(() => undefined, 1000);', // 2 flagged
      'setImmediate(() => undefined);', // 3 flagged
      'setTimeout(() => undefined, 10);', // 4 flagged
      'globalThis.setInterval(() => undefined, 5);', // 5 flagged
      "import type { Clock } from '../clock/index.js';",
      'declare const clock: Clock;',
      'const handle = clock.schedule(clock.nowMs() + 1000, () => undefined);', // clean
      'await clock.sleep(10);', // clean
      'socket.setTimeout(1000);', // clean: a method, not the global
    ].join('\n');
    const reports = await lint('src/queue/planted.ts', code);
    expect(reports.map((r) => [r.line, r.message])).toEqual([1, 2, 3, 4, 5].map((line) => [line, SCHEDULE]));
  });

  it('leaves src/clock and src/cli alone', async () => {
    expect(await lint('src/clock/planted.ts', 'setInterval(() => undefined, 1000);')).toEqual([]);
    expect(await lint('src/cli/planted.ts', 'setImmediate(() => undefined);')).toEqual([]);
  });

  it('still applies inside the layered folders (whose blocks restate it)', async () => {
    for (const file of ['src/reconciler/planted.ts', 'src/providers/planted.ts', 'src/agent/planted.ts']) {
      expect((await lint(file, 'setInterval(() => undefined, 1000);')).map((r) => r.message), file).toEqual([SCHEDULE]);
    }
  });
});

describe('folder cycles (scripts/check-layers.ts)', () => {
  const imports = (files: Record<string, string>): FolderImport[] =>
    Object.entries(files).flatMap(([file, source]) => folderImportsOf(file, source));

  it('reports a two-folder cycle with the import lines that form it', () => {
    const cycles = findFolderCycles(
      imports({
        'src/alpha/a.ts': "import { b } from '../beta/b.js';\nexport const a = 1;",
        'src/beta/b.ts': "export const b = 2;\nimport type { a } from '../alpha/a.js';",
      }),
    );
    expect(cycles.map((c) => c.folders)).toEqual([['alpha', 'beta']]);
    expect(formatCycles(cycles)).toBe(
      [
        'Folder cycle: src/alpha → src/beta → src/alpha',
        '  src/alpha → src/beta:',
        "      src/alpha/a.ts:1  import { b } from '../beta/b.js';",
        '  src/beta → src/alpha:',
        "      src/beta/b.ts:2 (type-only)  import type { a } from '../alpha/a.js';",
      ].join('\n'),
    );
  });

  it('reports a cycle through a chain, and not a one-way graph', () => {
    const chain = {
      'src/a/x.ts': "import { y } from '../b/y.js';",
      'src/b/y.ts': "export * from '../c/z.js';",
      'src/c/z.ts': "const x = await import('../a/x.js');",
    };
    expect(findFolderCycles(imports(chain)).map((c) => c.folders)).toEqual([['a', 'b', 'c']]);
    expect(findFolderCycles(imports({ ...chain, 'src/c/z.ts': "import { w } from './w.js';" }))).toEqual([]);
  });

  it('counts only folders of src/: same-folder, package, src/ root and outside imports are no edges', () => {
    expect(
      imports({
        'src/a/x.ts': "import { y } from './y.js';\nimport { z } from './sub/z.js';\nimport fs from 'node:fs';\nimport { q } from '../index.js';",
        'src/a/sub/z.ts': "import { x } from '../x.js';",
        'src/index.ts': "export * from './a/x.js';",
        'test/a.test.ts': "import { x } from '../src/a/x.js';",
      }),
    ).toEqual([]);
  });

  it('finds a folder cycle planted in the real tree', () => {
    const planted: FolderImport[] = folderImportsOf('src/queue/planted.ts', "import type { Plan } from '../reconciler/plan.js';");
    const cycles = findFolderCycles([...treeImports(ROOT), ...planted]);
    const report = formatCycles(cycles);
    expect(cycles.length).toBeGreaterThan(0);
    expect(report).toContain("src/queue/planted.ts:1 (type-only)  import type { Plan } from '../reconciler/plan.js';");
    for (const cycle of cycles) expect(cycle.folders).toContain('queue');
  });
});

describe('the real tree', () => {
  it('has no folder cycle among src/* folders', () => {
    const cycles = findFolderCycles(treeImports(ROOT));
    expect(formatCycles(cycles)).toBe('');
  });

  it('breaks no layering or clock rule in src/ and web/', async () => {
    const results = await eslint.lintFiles(['src', 'web']);
    const reports = results.flatMap((r) => r.messages.map((m) => `${r.filePath.slice(ROOT.length + 1)}:${m.line} ${m.ruleId} ${m.message}`));
    expect(reports).toEqual([]);
    expect(results.length).toBeGreaterThan(100);
  });
});
