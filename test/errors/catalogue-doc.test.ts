/**
 * Keeps docs/errors.md and the error catalogue in step: every code (ERROR_CODES) and every
 * DroverError subclass in src/ has its row, in the order of ERROR_CODES for codes; each row's
 * retryability and HTTP status are what the code does (each class constructed with sample
 * arguments; statuses from HTTP_STATUS); and the page names no code or class that does not
 * exist. Adding a code or a class without its line here fails this test.
 */
import { readFileSync, readdirSync } from 'node:fs';
import { join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { CliError, EXIT } from '../../src/cli/client.js';
import * as configModule from '../../src/config/index.js';
import * as catalogue from '../../src/errors/index.js';
import * as awsErrors from '../../src/providers/aws/errors.js';
import * as hcloudClient from '../../src/providers/hetzner/client.js';
import { DroverError, ERROR_CODES, HIDDEN_STATUS, HTTP_STATUS, type ErrorCode } from '../../src/errors/index.js';
import * as lifecycle from '../../src/store/lifecycle.js';

const ROOT = fileURLToPath(new URL('../../', import.meta.url));
const DOC = readFileSync(join(ROOT, 'docs/errors.md'), 'utf8');

/** The modules that export DroverError subclasses. A subclass declared elsewhere fails the scan test below. */
const MODULES: Record<string, Record<string, unknown>> = {
  'src/errors/index.ts': catalogue,
  'src/config/index.ts': configModule,
  'src/store/lifecycle.ts': lifecycle,
  'src/providers/aws/errors.ts': awsErrors,
  'src/providers/hetzner/client.ts': hcloudClient,
};

type ErrorClass = new (...args: unknown[]) => DroverError;

/**
 * Arguments each class is constructed with. The first set gives the class's default
 * retryability; further sets show what else the class can carry (ProviderError told "no").
 */
const SAMPLES: Record<string, unknown[][]> = {
  PermanentError: [[new Error('creating instance i-1: refused')]],
  ConfigError: [[[{ path: 'groups.default.web.size', message: 'must be >= 0' }]]],
  SettingError: [['reading server.tls.cert /x: ENOENT']],
  InternalError: [['watching server.tls: the admin API server does not serve TLS']],
  InstanceNotFoundError: [['i-1']],
  TimeoutError: [['creating instance i-1', 10]],
  ThrottledError: [['sim provider create']],
  NotLeaderError: [['deleting instance i-1']],
  InvalidRequestError: [['not a group: a/B!']],
  ConflictError: [['instance i-1 is not draining (status running)']],
  ProviderError: [['sim provider create: injected failure'], ['local provider create i-1: ENOENT', { retryable: false }]],
  UnavailableError: [['the event stream has 1 clients already']],
  InstanceUnknownError: [['i-1']],
  NotFoundError: [['group a/b is not configured']],
  UnauthenticatedError: [[]],
  ForbiddenError: [['requests from origin http://evil.example are refused']],
  MisdirectedRequestError: [['this server does not answer to the name evil.example']],
  IllegalTransitionError: [['i-1', 'deleted', 'running', 'created']],
  HcloudError: [['Hetzner POST /servers', 412, 'resource_unavailable', 'server type cx32 unavailable in fsn1'], ['Hetzner POST /servers', 422, 'invalid_input', 'invalid input in field name']],
  CapacityError: [['RunInstances for i-1 (m7i.large, on-demand): InsufficientInstanceCapacity: no capacity', 'InsufficientInstanceCapacity', new Error('no capacity')]],
};

/** Every exported DroverError subclass of MODULES, by name. */
function exportedClasses(): Map<string, { ctor: ErrorClass; module: string }> {
  const found = new Map<string, { ctor: ErrorClass; module: string }>();
  for (const [module, exports] of Object.entries(MODULES)) {
    for (const value of Object.values(exports)) {
      if (typeof value !== 'function' || value === DroverError || !(value.prototype instanceof DroverError)) continue;
      if (!found.has(value.name)) found.set(value.name, { ctor: value as ErrorClass, module });
    }
  }
  return found;
}

function sourceFiles(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((e) => (e.isDirectory() ? sourceFiles(join(dir, e.name)) : e.name.endsWith('.ts') ? [join(dir, e.name)] : []));
}

/** Every class in src/ whose chain of `extends` reaches DroverError, with the file declaring it. */
function declaredSubclasses(): Map<string, string> {
  const parent = new Map<string, { base: string; file: string }>();
  for (const file of sourceFiles(join(ROOT, 'src'))) {
    for (const m of readFileSync(file, 'utf8').matchAll(/\bclass\s+(\w+)\s+extends\s+(\w+)/g)) {
      parent.set(m[1]!, { base: m[2]!, file: relative(ROOT, file) });
    }
  }
  const out = new Map<string, string>();
  for (const [name, { file }] of parent) {
    let base: string | undefined = parent.get(name)?.base;
    for (let hops = 0; base !== undefined && base !== 'DroverError' && hops < 20; hops++) base = parent.get(base)?.base;
    if (base === 'DroverError') out.set(name, file);
  }
  return out;
}

/** The rows of the markdown table that follows `heading`, as cells (header and rule dropped). */
function table(heading: string): string[][] {
  const start = DOC.indexOf(`\n${heading}\n`);
  if (start < 0) throw new Error(`docs/errors.md has no "${heading}" section`);
  const lines = DOC.slice(start + heading.length + 2).split('\n');
  const first = lines.findIndex((l) => l.startsWith('|'));
  const rows: string[][] = [];
  for (const line of lines.slice(first)) {
    if (!line.startsWith('|')) break;
    rows.push(line.slice(1, line.endsWith('|') ? -1 : undefined).split('|').map((c) => c.trim()));
  }
  return rows.slice(2);
}

const unquote = (cell: string): string => cell.replace(/^`|`$/g, '');
const quoted = (cell: string): string[] => [...cell.matchAll(/`([^`]+)`/g)].map((m) => m[1]!);
const yesNo = (retryable: boolean): string => (retryable ? 'yes' : 'no');

const classes = exportedClasses();
const samples = new Map<string, DroverError[]>();
for (const [name, { ctor }] of classes) samples.set(name, (SAMPLES[name] ?? []).map((args) => new ctor(...args)));

describe('docs/errors.md and the error catalogue', () => {
  it('every DroverError subclass declared in src/ is exported from a module this test reads, and has sample arguments', () => {
    const declared = declaredSubclasses();
    expect([...declared.keys()].filter((n) => !classes.has(n)), 'subclasses not exported from MODULES (export them, or add their module)').toEqual([]);
    expect([...classes.keys()].filter((n) => SAMPLES[n] === undefined), 'classes without SAMPLES').toEqual([]);
    expect(Object.keys(SAMPLES).filter((n) => !classes.has(n)), 'SAMPLES of classes that do not exist').toEqual([]);
    for (const [name, made] of samples) {
      for (const err of made) {
        expect(err, name).toBeInstanceOf(DroverError);
        expect(err.name).toBe(name);
        expect(ERROR_CODES).toContain(err.code);
      }
    }
  });

  it('lists every code once, in the order of ERROR_CODES, with the HTTP status the API answers', () => {
    const rows = table('## Codes');
    expect(rows.map((r) => unquote(r[0]!))).toEqual([...ERROR_CODES]);
    for (const row of rows) {
      const code = unquote(row[0]!) as ErrorCode;
      expect(Number(row[1]), `HTTP status of ${code}`).toBe(HTTP_STATUS[code]);
    }
  });

  it("states each code's retryability as its classes have it, and names exactly the classes that carry it", () => {
    for (const row of table('## Codes')) {
      const code = unquote(row[0]!) as ErrorCode;
      const carriers = [...samples].filter(([, made]) => made.some((e) => e.code === code)).map(([name]) => name);
      expect(quoted(row[5]!).sort(), `classes of ${code}`).toEqual(carriers.sort());
      const values = new Set([...samples.values()].flat().filter((e) => e.code === code).map((e) => e.retryable));
      const expected = values.size > 1 ? 'depends' : yesNo(values.has(true));
      expect(row[2], `retryable of ${code}`).toBe(expected);
    }
  });

  it('lists every class once with its code, its default retryability and where it is declared', () => {
    const rows = table('## Classes');
    const names = rows.map((r) => unquote(r[0]!));
    expect(new Set(names).size, 'a class listed twice').toBe(names.length);
    expect([...names].sort()).toEqual([...classes.keys()].sort());
    const declared = declaredSubclasses();
    for (const row of rows) {
      const name = unquote(row[0]!);
      const [first] = samples.get(name)!;
      expect(unquote(row[1]!), `code of ${name}`).toBe(first!.code);
      expect(row[2]!.split(' ')[0], `retryable of ${name}`).toBe(yesNo(first!.retryable));
      expect(row[3]!.split(' ')[0], `file of ${name}`).toBe(declared.get(name));
    }
  });

  it('names no class that does not exist', () => {
    const known = new Set([...classes.keys(), 'DroverError', CliError.name]);
    const named = new Set(quoted(DOC).filter((w) => /^[A-Z]\w*Error$/.test(w)));
    expect([...named].filter((n) => !known.has(n))).toEqual([]);
  });

  it('says which codes are answered 500 without their message, as the table has them', () => {
    const match = /code answered 500 \(([^)]*)\)/.exec(DOC.replace(/\s+/g, ' '));
    expect(match, 'the sentence listing the codes answered 500').not.toBeNull();
    expect(HIDDEN_STATUS).toBe(500);
    expect(quoted(match![1]!).sort()).toEqual(ERROR_CODES.filter((c) => HTTP_STATUS[c] === HIDDEN_STATUS).sort());
  });

  it("lists the CLI's exit codes as EXIT has them; CliError is the CLI's own, not a DroverError", () => {
    const rows = table("## The CLI's errors");
    expect(rows.map((r) => [unquote(r[1]!), Number(r[0])])).toEqual(Object.entries(EXIT));
    expect(new CliError('x', EXIT.error)).not.toBeInstanceOf(DroverError);
  });
});
