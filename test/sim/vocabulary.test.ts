/**
 * The reconciler declares its reasons once (src/reconciler/reasons.ts); the checker classifies
 * each itself (sim/vocabulary.ts). These tests keep the two honest: every declared reason is
 * classified, the classification agrees with what the reconciler declares about it, and every
 * reason the reconciler's code writes as a literal is declared.
 */
import { readFileSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import ts from 'typescript';
import { describe, expect, it } from 'vitest';
import {
  CANCEL_REASONS,
  CREATE_REASONS,
  DELETE_REASONS,
  DRAIN_REASONS,
  FORGET_REASONS,
  HEALTH_REASONS, INVOLUNTARY_REASONS,
  ROTATION_REASONS,
  VOLUNTARY_REASONS,
} from '../../src/reconciler/reasons.js';
import { CLASSES, DECLARED_REASONS, classOf } from '../../sim/vocabulary.js';

const RECONCILER_DIR = join(import.meta.dirname, '../../src/reconciler');

/**
 * Strings the reconciler writes in a reason's place that are not reasons of a create, drain,
 * delete, cancel or forget: placeholders for a row without its reason, and the reasons of other
 * audit entries.
 */
const NOT_INSTANCE_REASONS: ReadonlyMap<string, string> = new Map([
  ['drain', 'placeholder: the audit of an ack, extension or forced end of a drain whose row lost its reason'],
  ['delete', 'placeholder: the audit of a delete whose row lost its reason'],
  ['rotation', 'a cancel hold’s reason, for a rotation with no drain reason yet'],
  ['notDraining', 'the audit of an ack that was ignored'],
  ['providerTags', 'the audit of a drain cancelled by another leader (found in the provider’s tags)'],
  ['provider error', 'a create hold’s text when it lost its own'],
  ['config', 'the audit of a group back in the config (its removal cancelled)'],
  ['maxUnhealthy', 'the audit of the health brake tripping or releasing'],
  ['sleep', 'the audit of a group whose tenant was put to sleep (its size 0) or woken (actor: the operator, or reconciler at its until)'],
]);

const REASON_NAME = /reason$/i;

/** The name an expression ends in (`reason`, `record.drainReason`, `a?.reason`), if any. */
function nameOf(node: ts.Node): string | null {
  if (ts.isIdentifier(node)) return node.text;
  if (ts.isPropertyAccessExpression(node)) return node.name.text;
  if (ts.isParenthesizedExpression(node) || ts.isNonNullExpression(node)) return nameOf(node.expression);
  return null;
}

/** The string literals an expression may evaluate to: through ternaries' branches, `??`, `||` and parentheses (not conditions). */
function valuesOf(node: ts.Expression): string[] {
  if (ts.isStringLiteral(node) || ts.isNoSubstitutionTemplateLiteral(node)) return [node.text];
  if (ts.isParenthesizedExpression(node) || ts.isAsExpression(node) || ts.isSatisfiesExpression(node)) return valuesOf(node.expression);
  if (ts.isConditionalExpression(node)) return [...valuesOf(node.whenTrue), ...valuesOf(node.whenFalse)];
  if (ts.isBinaryExpression(node) && (node.operatorToken.kind === ts.SyntaxKind.QuestionQuestionToken || node.operatorToken.kind === ts.SyntaxKind.BarBarToken)) {
    return [...valuesOf(node.left), ...valuesOf(node.right)];
  }
  return [];
}

const COMPARISONS = new Set([ts.SyntaxKind.EqualsEqualsEqualsToken, ts.SyntaxKind.ExclamationEqualsEqualsToken, ts.SyntaxKind.EqualsEqualsToken, ts.SyntaxKind.ExclamationEqualsToken]);

/**
 * String literals a reconciler source file uses as a reason: the value of a property, variable
 * or parameter named `…reason`/`…Reason`; a value compared with one; an argument in the place of
 * a local function's parameter so named (`drainOrDelete(inst, 'expiryForced', …)`); and a value
 * put in the plan's map of leaving instances to their reason (`leaving.set(id, 'vanished')`).
 */
function reasonLiterals(file: string): Array<{ value: string; where: string }> {
  const text = readFileSync(file, 'utf8');
  const source = ts.createSourceFile(file, text, ts.ScriptTarget.Latest, true);
  const out: Array<{ value: string; where: string }> = [];
  const add = (values: string[], at: ts.Node): void => {
    const { line } = source.getLineAndCharacterOfPosition(at.getStart(source));
    for (const value of values) out.push({ value, where: `${file.split('/').pop() ?? file}:${line + 1}` });
  };
  // Local functions and arrow functions: which argument positions are reasons.
  const reasonParams = new Map<string, number[]>();
  const collectParams = (node: ts.Node): void => {
    if (ts.isVariableDeclaration(node) && ts.isIdentifier(node.name) && node.initializer && (ts.isArrowFunction(node.initializer) || ts.isFunctionExpression(node.initializer))) {
      const params = node.initializer.parameters.map((p, i) => (ts.isIdentifier(p.name) && REASON_NAME.test(p.name.text) ? i : -1)).filter((i) => i >= 0);
      if (params.length > 0) reasonParams.set(node.name.text, params);
    }
    if (ts.isFunctionDeclaration(node) && node.name) {
      const params = node.parameters.map((p, i) => (ts.isIdentifier(p.name) && REASON_NAME.test(p.name.text) ? i : -1)).filter((i) => i >= 0);
      if (params.length > 0) reasonParams.set(node.name.text, params);
    }
    ts.forEachChild(node, collectParams);
  };
  collectParams(source);
  const visit = (node: ts.Node): void => {
    if ((ts.isPropertyAssignment(node) || ts.isVariableDeclaration(node) || ts.isParameter(node)) && node.initializer) {
      const name = nameOf(node.name);
      if (name !== null && REASON_NAME.test(name)) add(valuesOf(node.initializer), node);
    }
    if (ts.isBinaryExpression(node) && COMPARISONS.has(node.operatorToken.kind)) {
      if (REASON_NAME.test(nameOf(node.left) ?? '')) add(valuesOf(node.right), node);
      if (REASON_NAME.test(nameOf(node.right) ?? '')) add(valuesOf(node.left), node);
    }
    if (ts.isCallExpression(node)) {
      const callee = node.expression;
      const positions = ts.isIdentifier(callee) ? (reasonParams.get(callee.text) ?? []) : [];
      for (const i of positions) {
        const arg = node.arguments[i];
        if (arg) add(valuesOf(arg), arg);
      }
      if (ts.isPropertyAccessExpression(callee) && callee.name.text === 'set' && nameOf(callee.expression) === 'leaving') {
        const arg = node.arguments[1];
        if (arg) add(valuesOf(arg), arg);
      }
    }
    ts.forEachChild(node, visit);
  };
  visit(source);
  return out;
}

describe('the reasons the reconciler declares, and the checker’s reading of them', () => {
  it('classifies every reason the reconciler declares, and no reason it does not', () => {
    for (const reason of DECLARED_REASONS) expect(Object.hasOwn(CLASSES, reason), `the checker does not classify "${reason}"`).toBe(true);
    expect(Object.keys(CLASSES).sort()).toEqual([...DECLARED_REASONS].sort());
  });

  it('agrees with the reconciler on which reasons are voluntary, rotations, involuntary and losses of health', () => {
    const disagreements: string[] = [];
    const compare = (what: string, declared: readonly string[], mine: (r: string) => boolean): void => {
      for (const r of DECLARED_REASONS) if (declared.includes(r) !== mine(r)) disagreements.push(`${r}: ${what} is ${declared.includes(r)} in src/, ${mine(r)} in the checker`);
    };
    compare('voluntary', VOLUNTARY_REASONS, (r) => classOf(r).voluntary);
    compare('rotation', ROTATION_REASONS, (r) => classOf(r).rotation);
    compare('involuntary', INVOLUNTARY_REASONS, (r) => classOf(r).involuntary);
    compare('a loss of health', HEALTH_REASONS, (r) => classOf(r).healthLoss);
    expect(disagreements).toEqual([]);
  });

  it('gives a create, drain, delete, cancel or forget only reasons it declares for that action', () => {
    // Voluntary and rotation reasons are drain reasons; involuntary ones may be written by a
    // create (the replacement of one that left), a drain or a delete.
    for (const r of [...VOLUNTARY_REASONS, ...ROTATION_REASONS]) expect(DRAIN_REASONS as readonly string[]).toContain(r);
    for (const r of INVOLUNTARY_REASONS) expect([...DRAIN_REASONS, ...DELETE_REASONS, ...FORGET_REASONS] as readonly string[]).toContain(r);
    for (const r of [...CANCEL_REASONS, ...DRAIN_REASONS]) expect(DELETE_REASONS as readonly string[]).toContain(r);
    for (const r of ROTATION_REASONS) expect(CREATE_REASONS as readonly string[]).toContain(r);
  });

  it('finds every string the reconciler’s code uses as a reason among the declared ones', () => {
    // Every module of the reconciler, its subfolders (the planner's phases) included.
    const files = (readdirSync(RECONCILER_DIR, { recursive: true }) as string[])
      .filter((f) => f.endsWith('.ts') && f !== 'reasons.ts')
      .map((f) => join(RECONCILER_DIR, f));
    const found = files.flatMap(reasonLiterals);
    const declared = new Set<string>(DECLARED_REASONS);
    const unknown = found.filter((f) => !declared.has(f.value) && !NOT_INSTANCE_REASONS.has(f.value)).map((f) => `${f.value} (${f.where})`);
    expect(unknown).toEqual([]);
    // The scan is not vacuous: it sees the reasons plan.ts, executor.ts and sync.ts write.
    const seen = new Set(found.map((f) => f.value));
    for (const r of ['expiryForced', 'drainDeadline', 'startupTimeout', 'scaleUp', 'groupRemoved', 'cancelled', 'createFailed', 'leak', 'adopted', 'vanished', 'terminated']) {
      expect(seen, `the scan no longer sees "${r}"`).toContain(r);
    }
    // Every placeholder it allows is still there (a stale allowance would hide a new reason).
    for (const p of NOT_INSTANCE_REASONS.keys()) expect(seen, `"${p}" is allowed but no longer used`).toContain(p);
  });

  it('reports a reason literal that is not declared (the scan is not blind to a new one)', () => {
    const probe = join(import.meta.dirname, 'fixtures', 'undeclared-reason.ts.txt');
    const found = reasonLiterals(probe).map((f) => f.value);
    expect(found).toEqual(expect.arrayContaining(['preempted', 'rebalance', 'retired', 'drifted']));
  });
});
