/** Hetzner's label rules and selector language, as the fake enforces and evaluates them. */
import { describe, expect, it } from 'vitest';
import { checkLabels, labelKeyProblem, labelValueProblem, matchesSelector, parseLabelSelector } from './index.js';

const matches = (labels: Record<string, string>, selector: string) => matchesSelector(labels, parseLabelSelector(selector));

describe('label keys', () => {
  it('accepts names of up to 63 characters with -_. inside, and DNS-subdomain prefixes', () => {
    for (const key of ['env', 'a', 'drover.group', 'Drover_Group-1.x', 'x'.repeat(63), 'example.com/my', 'drover.dev/group', `${'a'.repeat(63)}.b/c`]) {
      expect(labelKeyProblem(key), key).toBeUndefined();
    }
  });

  it('refuses empty or long names, names not starting and ending alphanumerically, bad prefixes and the reserved hetzner.cloud/ prefix', () => {
    for (const key of ['', 'x'.repeat(64), '-env', 'env-', '.env', 'env.', 'a b', 'a:b', 'ü', '/name', 'ex_ample.com/name', 'example..com/x', 'a/b/c', `${'a.'.repeat(127)}a/x`, 'hetzner.cloud/x']) {
      expect(labelKeyProblem(key), key).toBeDefined();
    }
    expect(labelKeyProblem('hetzner.cloud/x')).toMatch(/reserved/);
  });
});

describe('label values', () => {
  it('accepts the empty string and up to 63 characters of the name alphabet', () => {
    for (const v of ['', 'v', 'prod', 'v1.2_3-x', 'x'.repeat(63)]) expect(labelValueProblem('k', v), v).toBeUndefined();
  });

  it('refuses non-strings, 64 characters, and values not starting and ending alphanumerically', () => {
    for (const v of [1, true, null, 'x'.repeat(64), '-v', 'v-', 'a b', 'a/b', 'a=b', 'a,b']) expect(labelValueProblem('k', v), String(v)).toBeDefined();
  });

  it('checkLabels keeps the good labels and names every bad one', () => {
    const { labels, problems } = checkLabels({ ok: 'yes', 'bad key': 'x', fine: '', worse: 'a b' });
    expect(labels).toEqual({ ok: 'yes', fine: '' });
    expect(problems).toHaveLength(2);
    expect(problems.join(' ')).toContain("'bad key'");
    expect(problems.join(' ')).toContain("'worse'");
    expect(checkLabels(['x']).problems).toEqual(['labels must be an object of string values']);
  });
});

describe('label selectors', () => {
  const web = { env: 'prod', role: 'web', 'drover.dev/group': 'g1', flag: '' };

  it('matches equality (= and ==), inequality, presence and absence', () => {
    expect(matches(web, 'env=prod')).toBe(true);
    expect(matches(web, 'env==prod')).toBe(true);
    expect(matches(web, 'env=dev')).toBe(false);
    expect(matches(web, 'env!=dev')).toBe(true);
    expect(matches(web, 'env!=prod')).toBe(false);
    expect(matches(web, 'flag')).toBe(true);
    expect(matches(web, 'flag=')).toBe(true);
    expect(matches(web, 'missing')).toBe(false);
    expect(matches(web, '!missing')).toBe(true);
    expect(matches(web, '!env')).toBe(false);
    expect(matches(web, 'drover.dev/group=g1')).toBe(true);
  });

  it('treats commas as AND, also around set expressions', () => {
    expect(matches(web, 'env=prod,role=web')).toBe(true);
    expect(matches(web, 'env=prod,role=db')).toBe(false);
    expect(matches(web, 'env in (dev,prod),!missing, role notin (db, cache)')).toBe(true);
    expect(matches(web, 'env in (dev,staging)')).toBe(false);
    expect(matches(web, 'role notin (web)')).toBe(false);
  });

  it('lets k!=v and k notin (…) match a resource without k, as Kubernetes selectors do', () => {
    expect(matches({}, 'env!=prod')).toBe(true);
    expect(matches({}, 'env notin (prod)')).toBe(true);
    expect(matches({}, 'env in (prod)')).toBe(false);
  });

  it('matches everything with an empty selector', () => {
    expect(parseLabelSelector('')).toEqual([]);
    expect(matches({}, '')).toBe(true);
  });

  it('refuses malformed selectors', () => {
    for (const s of ['env in prod', 'env in (prod', 'env)', '=prod', 'env=a b', ',', 'a,,b', '-x=1', 'env in (a b)']) {
      expect(() => parseLabelSelector(s), s).toThrow();
    }
  });
});
