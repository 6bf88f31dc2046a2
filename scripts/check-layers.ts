/**
 * Folder-cycle check: fails when the folders under src/ import each other in a cycle (folder A
 * imports folder B and B imports A, directly or through a chain of other folders).
 *
 *   npx tsx scripts/check-layers.ts        (run by `npm run lint`, so by `npm test`)
 *
 * The graph is built from the TypeScript import syntax of every src/**\/*.ts file: `import`,
 * `export … from`, `import x = require()`, dynamic `import()` and `import('…').T` type
 * references. An edge is folder(importing file) → folder(imported file) for relative specifiers
 * that leave the folder; packages are not part of it, nor are the files directly in src/ (the
 * package entry point src/index.ts re-exports every folder and is imported by none).
 *
 * Type-only imports (`import type`, `export type … from`, `import('…').T`) count: they create no
 * cycle at run time, but a cycle through them still ties two folders together — neither can be
 * understood, changed or moved without the other. Each reported edge says whether it is type-only.
 *
 * Every folder edge that lies on a cycle is reported once, with a shortest cycle through it and
 * the import lines that form each step, so a fix can start from any of them.
 *
 * The directional layering rules (the reconciler, providers, the agent and the dashboard) are
 * ESLint rules in eslint.config.js; this script is the one check that needs the whole tree.
 */
import { readdirSync, readFileSync, realpathSync } from 'node:fs';
import { join, posix, relative, resolve, sep } from 'node:path';
import { fileURLToPath } from 'node:url';
import ts from 'typescript';

/** One import of a module in another src/ folder. Paths are repo-relative, with `/`. */
export interface FolderImport {
  file: string;
  line: number;
  /** The source line of the import, trimmed. */
  text: string;
  specifier: string;
  typeOnly: boolean;
  fromFolder: string;
  toFolder: string;
}

export interface FolderCycle {
  /** The folders in order; the last imports the first. */
  folders: string[];
  /** For each step folders[i] → folders[i+1] (wrapping), the imports that make it. */
  steps: { from: string; to: string; imports: FolderImport[] }[];
}

/** The src/ folder a repo-relative path belongs to, or null (outside src/ or directly in it). */
export function folderOf(path: string): string | null {
  const parts = path.split('/');
  return parts[0] === 'src' && parts.length > 2 ? (parts[1] ?? null) : null;
}

/** Imports in `source` (file `file`, repo-relative) of modules in other src/ folders. */
export function folderImportsOf(file: string, source: string): FolderImport[] {
  const fromFolder = folderOf(file);
  if (fromFolder === null) return [];
  const sf = ts.createSourceFile(file, source, ts.ScriptTarget.Latest, true, file.endsWith('x') ? ts.ScriptKind.TSX : ts.ScriptKind.TS);
  const out: FolderImport[] = [];

  const add = (node: ts.Node, specifierNode: ts.Expression | ts.TypeNode | undefined, typeOnly: boolean): void => {
    if (!specifierNode) return;
    let specifier: string | undefined;
    if (ts.isStringLiteralLike(specifierNode)) specifier = specifierNode.text;
    else if (ts.isLiteralTypeNode(specifierNode) && ts.isStringLiteral(specifierNode.literal)) specifier = specifierNode.literal.text;
    if (specifier === undefined || !specifier.startsWith('.')) return;
    const target = posix.normalize(posix.join(posix.dirname(file), specifier));
    const toFolder = folderOf(target);
    if (toFolder === null || toFolder === fromFolder) return;
    const start = node.getStart(sf);
    const { line } = sf.getLineAndCharacterOfPosition(start);
    const text = source.split('\n')[line]?.trim() ?? '';
    out.push({ file, line: line + 1, text, specifier, typeOnly, fromFolder, toFolder });
  };

  const visit = (node: ts.Node): void => {
    if (ts.isImportDeclaration(node)) {
      add(node, node.moduleSpecifier, node.importClause?.isTypeOnly === true);
    } else if (ts.isExportDeclaration(node)) {
      add(node, node.moduleSpecifier, node.isTypeOnly);
    } else if (ts.isImportEqualsDeclaration(node) && ts.isExternalModuleReference(node.moduleReference)) {
      add(node, node.moduleReference.expression, node.isTypeOnly);
    } else if (ts.isCallExpression(node) && node.expression.kind === ts.SyntaxKind.ImportKeyword) {
      add(node, node.arguments[0], false);
    } else if (ts.isImportTypeNode(node)) {
      add(node, node.argument, true);
    }
    ts.forEachChild(node, visit);
  };
  visit(sf);
  return out;
}

/**
 * The folder cycles formed by `imports`: every folder edge that lies on a cycle, each with a
 * shortest cycle through it (cycles found from several of their edges are reported once).
 */
export function findFolderCycles(imports: FolderImport[]): FolderCycle[] {
  const edges = new Map<string, Map<string, FolderImport[]>>();
  for (const imp of imports) {
    let out = edges.get(imp.fromFolder);
    if (!out) edges.set(imp.fromFolder, (out = new Map<string, FolderImport[]>()));
    const list = out.get(imp.toFolder);
    if (list) list.push(imp);
    else out.set(imp.toFolder, [imp]);
  }
  const next = (folder: string): string[] => [...(edges.get(folder)?.keys() ?? [])].sort();

  /** Shortest folder path from `start` to `goal` (breadth-first, alphabetical ties), or null. */
  const shortestPath = (start: string, goal: string): string[] | null => {
    const cameFrom = new Map<string, string | null>([[start, null]]);
    const queue = [start];
    for (let i = 0; i < queue.length; i++) {
      const at = queue[i]!;
      if (at === goal) {
        const path: string[] = [];
        for (let step: string | null = at; step !== null; step = cameFrom.get(step) ?? null) path.unshift(step);
        return path;
      }
      for (const n of next(at)) {
        if (cameFrom.has(n)) continue;
        cameFrom.set(n, at);
        queue.push(n);
      }
    }
    return null;
  };

  const cycles: FolderCycle[] = [];
  const seen = new Set<string>();
  for (const from of [...edges.keys()].sort()) {
    for (const to of next(from)) {
      const back = shortestPath(to, from);
      if (!back) continue;
      const folders = [from, ...back.slice(0, -1)];
      // Same cycle from another of its edges: compare by rotation starting at the least folder.
      const least = folders.indexOf([...folders].sort()[0]!);
      const key = [...folders.slice(least), ...folders.slice(0, least)].join(' → ');
      if (seen.has(key)) continue;
      seen.add(key);
      cycles.push({
        folders,
        steps: folders.map((f, i) => {
          const t = folders[(i + 1) % folders.length]!;
          return { from: f, to: t, imports: edges.get(f)?.get(t) ?? [] };
        }),
      });
    }
  }
  return cycles;
}

/** Human-readable report of `cycles`, one block per cycle. */
export function formatCycles(cycles: FolderCycle[]): string {
  return cycles
    .map((c) => {
      const head = `Folder cycle: ${[...c.folders, c.folders[0]].map((f) => `src/${f}`).join(' → ')}`;
      const steps = c.steps.map((s) => {
        const lines = s.imports.map((i) => `      ${i.file}:${i.line}${i.typeOnly ? ' (type-only)' : ''}  ${i.text}`);
        return [`  src/${s.from} → src/${s.to}:`, ...lines].join('\n');
      });
      return [head, ...steps].join('\n');
    })
    .join('\n\n');
}

/** Repo-relative paths (with `/`) of the .ts/.tsx files under `dir` of repo `root`. */
export function sourceFiles(root: string, dir = 'src'): string[] {
  const out: string[] = [];
  const walk = (abs: string): void => {
    for (const entry of readdirSync(abs, { withFileTypes: true })) {
      const path = join(abs, entry.name);
      if (entry.isDirectory()) walk(path);
      else if (/\.tsx?$/.test(entry.name)) out.push(relative(root, path).split(sep).join('/'));
    }
  };
  walk(join(root, dir));
  return out.sort();
}

/** The cross-folder imports of every src/ file of repo `root`. */
export function treeImports(root: string): FolderImport[] {
  return sourceFiles(root).flatMap((file) => folderImportsOf(file, readFileSync(join(root, file), 'utf8')));
}

function main(): void {
  const root = resolve(fileURLToPath(new URL('..', import.meta.url)));
  const imports = treeImports(root);
  const cycles = findFolderCycles(imports);
  if (cycles.length > 0) {
    console.error(formatCycles(cycles));
    console.error(`\n${cycles.length} folder cycle(s) among src/* folders. Layering: no import cycle among src/* folders (type-only imports count).`);
    process.exitCode = 1;
    return;
  }
  const folders = new Set(imports.flatMap((i) => [i.fromFolder, i.toFolder]));
  const edges = new Set(imports.map((i) => `${i.fromFolder}>${i.toFolder}`));
  console.log(`No folder cycles among src/* folders (${folders.size} folders, ${edges.size} folder edges, ${imports.length} imports).`);
}

const invoked = process.argv[1];
if (invoked && realpathSync(invoked) === realpathSync(fileURLToPath(import.meta.url))) main();
