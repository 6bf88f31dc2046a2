/**
 * The package as users get it: `npm pack` of a clean copy of the repository, installed with
 * `npm install -g --prefix <tmp>` as the cloud bootstrap installs `drover@VERSION` on each
 * instance, then run from `<prefix>/bin/drover`.
 *
 * What is packed: a copy of the files git would commit — `git ls-files --cached --others
 * --exclude-standard`, i.e. tracked files as they are in the working tree plus new files that are
 * not ignored — not `git archive HEAD`. On CI's fresh clone the two are the same; while
 * developing, the copy tests the change about to be committed (a new `files` entry, a new source
 * file) instead of the previous commit. What must not leak cannot: everything ignored stays out,
 * above all `dist/`, which `prepack` must build from scratch (the bug this test guards against: a
 * tarball without `dist/` has no `drover` command).
 *
 * Cost: the copy's `node_modules` is a link to the project's (nothing is installed to build); the
 * global install resolves dependencies through npm's cache (`--prefer-offline`, warm after
 * `npm ci`). better-sqlite3's install script (`prebuild-install || node-gyp rebuild`) runs, as
 * for a user; it is handed this project's own build of the native module as a local prebuilt
 * binary (prebuild-install's `local_prebuilds` folder, in its own archive layout), so the install
 * does not compile SQLite again (75 s of the test's 98 s on 2 cores) — compiling it is
 * better-sqlite3's part, tested by `npm ci` itself. About 25 s in all; the hook allows 5 min.
 *
 * The child npm runs with the caller's user config (~/.npmrc: cache, CA file, `nodedir` for
 * node-gyp) but without the `npm_*` variables npm sets for a script such as `npm test`: they
 * describe that run (its prefix, local prefix, log level), not a user's install.
 */
import { spawn } from 'node:child_process';
import { cpSync, existsSync, mkdirSync, mkdtempSync, readFileSync, realpathSync, rmSync, statSync, symlinkSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

const ROOT = join(import.meta.dirname, '..', '..');
const PACKAGE = JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as { name: string; version: string };
const SETUP_TIMEOUT_MS = 5 * 60_000;

interface Run {
  status: number | null;
  stdout: string;
  stderr: string;
}

/**
 * The environment of a user's shell: this process's, without what npm set for the script running
 * it. JOBS lets node-gyp compile better-sqlite3's two halves (SQLite, the binding) in parallel.
 */
function userEnv(): NodeJS.ProcessEnv {
  return { JOBS: 'max', ...Object.fromEntries(Object.entries(process.env).filter(([name]) => !name.startsWith('npm_'))) };
}

function run(command: string, args: string[], cwd: string, env: NodeJS.ProcessEnv = {}): Promise<Run> {
  return new Promise((resolve, reject) => {
    const child = spawn(command, args, { cwd, env: { ...userEnv(), ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    child.on('error', reject);
    child.on('close', (status) => resolve({ status, stdout, stderr }));
  });
}

async function runOk(command: string, args: string[], cwd: string, env: NodeJS.ProcessEnv = {}): Promise<Run> {
  const result = await run(command, args, cwd, env);
  if (result.status !== 0) throw new Error(`${command} ${args.join(' ')} exited ${result.status}:\n${result.stderr}\n${result.stdout}`);
  return result;
}

/** Copies the files git would commit (see the header) from ROOT into `dest`. */
async function copyCommittable(dest: string): Promise<void> {
  const { stdout } = await runOk('git', ['ls-files', '-z', '--cached', '--others', '--exclude-standard'], ROOT);
  for (const file of stdout.split('\0')) {
    // A linked node_modules is not matched by .gitignore's `node_modules/` (not a folder to git).
    if (file === '' || file === 'node_modules' || !existsSync(join(ROOT, file))) continue; // deleted, not yet staged
    mkdirSync(dirname(join(dest, file)), { recursive: true });
    cpSync(join(ROOT, file), join(dest, file), { preserveTimestamps: true });
  }
}

interface PackedFile {
  path: string;
  mode: number;
}

let work = '';
let prefix = '';
let files: PackedFile[] = [];
const seconds: Record<string, number> = {};

async function timed<T>(phase: string, fn: () => Promise<T>): Promise<T> {
  const started = performance.now();
  try {
    return await fn();
  } finally {
    seconds[phase] = Math.round((performance.now() - started) / 100) / 10;
  }
}

beforeAll(async () => {
  work = mkdtempSync(join(tmpdir(), 'drover-tarball-'));
  const checkout = join(work, 'checkout');
  prefix = join(work, 'prefix');
  await timed('copy', () => copyCommittable(checkout));
  expect(existsSync(join(checkout, 'dist')), 'the copy holds no build').toBe(false);
  symlinkSync(realpathSync(join(ROOT, 'node_modules')), join(checkout, 'node_modules'));

  const packed = await timed('pack', () => runOk('npm', ['pack', '--json', '--pack-destination', work], checkout));
  const [info] = JSON.parse(packed.stdout) as Array<{ filename: string; files: PackedFile[] }>;
  files = info!.files;
  const tarball = join(work, info!.filename);

  // The project's own build of better-sqlite3's native module, as prebuild-install looks for a
  // local prebuilt binary: <name>-v<version>-node-v<ABI>-<platform>-<arch>.tar.gz holding
  // build/Release/better_sqlite3.node (see the header).
  const sqliteDir = join(ROOT, 'node_modules', 'better-sqlite3');
  const sqliteVersion = (JSON.parse(readFileSync(join(sqliteDir, 'package.json'), 'utf8')) as { version: string }).version;
  const prebuilds = join(work, 'prebuilds');
  mkdirSync(prebuilds);
  const archive = `better-sqlite3-v${sqliteVersion}-node-v${process.versions.modules}-${process.platform}-${process.arch}.tar.gz`;
  await runOk('tar', ['-czf', join(prebuilds, archive), '-C', sqliteDir, 'build/Release/better_sqlite3.node'], work);

  // --allow-scripts: npm 11 runs a dependency's install script only when allowed, and a global
  // install has no project package.json whose `allowScripts` could allow it (README, "Install").
  await timed('install', () =>
    runOk('npm', ['install', '--global', '--prefix', prefix, '--prefer-offline', '--no-audit', '--no-fund', '--allow-scripts=better-sqlite3', tarball], work, { npm_config_better_sqlite3_local_prebuilds: prebuilds }),
  );
  console.log(`packed and installed ${info!.filename}: ${JSON.stringify(seconds)} s`);
}, SETUP_TIMEOUT_MS);

afterAll(async () => {
  if (work) await timed('cleanup', async () => rmSync(work, { recursive: true, force: true }));
  console.log(`cleaned up: ${JSON.stringify(seconds)} s`);
}, SETUP_TIMEOUT_MS);

describe('the npm tarball', () => {
  it('holds the built CLI (executable), the library, the dashboard and the examples', () => {
    const paths = files.map((f) => f.path);
    expect(paths).toEqual(expect.arrayContaining(['package.json', 'README.md', 'dist/cli/main.js', 'dist/index.js', 'dist/index.d.ts', 'dist/web/index.html', 'examples/drover.yaml']));
    expect(paths.some((p) => /^dist\/web\/assets\/.+\.js$/.test(p))).toBe(true);
    expect(files.find((f) => f.path === 'dist/cli/main.js')!.mode & 0o111).not.toBe(0);
  });

  it('holds no sources, tests or dashboard sources', () => {
    const strays = files.map((f) => f.path).filter((p) => /^(src|test|web|sim|bench|scripts|docs|node_modules)\//.test(p));
    expect(strays).toEqual([]);
  });

  it('installs globally into a drover command that prints the package version', async () => {
    const bin = join(prefix, 'bin', 'drover');
    const res = await run(bin, ['--version'], work);
    expect(res.stderr).toBe('');
    expect(res.status).toBe(0);
    expect(res.stdout).toBe(`${PACKAGE.version}\n`);
  });

  it("installs a drover agent command, what each instance's bootstrap runs", async () => {
    const res = await run(join(prefix, 'bin', 'drover'), ['agent', '--help'], work);
    expect(res.status).toBe(0);
    expect(res.stdout).toMatch(/^Usage: drover agent \[options\]/);
    expect(res.stdout).toMatch(/--config <file>/);
  });

  it('installs the dashboard where the server serves it from, and a working SQLite', async () => {
    const installed = join(prefix, 'lib', 'node_modules', PACKAGE.name);
    expect(statSync(join(installed, 'dist', 'web', 'index.html')).isFile()).toBe(true);
    // The server's own lookup (src/server/static.ts), run inside the installed package.
    const webDir = await runOk(process.execPath, ['--input-type=module', '-e', "import('./dist/server/static.js').then((m) => console.log(m.defaultWebDir()))"], installed);
    expect(webDir.stdout.trim()).toBe(join(installed, 'dist', 'web') + '/');
    // better-sqlite3's native module was built (its install script ran) and opens a database.
    const sqlite = await runOk(process.execPath, ['-e', "const D = require('better-sqlite3'); console.log(new D(':memory:').prepare('select 6 * 7 as x').get().x)"], installed);
    expect(sqlite.stdout.trim()).toBe('42');
  });
});
