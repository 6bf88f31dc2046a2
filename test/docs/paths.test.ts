/**
 * The docs name files, folders and sections; these tests keep those names true. Every
 * repository path written in backticks (`src/...`, `test/...`, `web/...`, `sim/...`, `bench/...`,
 * `docs/...`, `examples/...`, `scripts/...`, `.ci/...`) and every relative link in a Markdown file
 * of the repository must exist, and a link's `#anchor` must be a heading of its target.
 */
import { execFileSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { dirname, join, normalize } from 'node:path';
import { describe, expect, it } from 'vitest';

const ROOT = join(import.meta.dirname, '..', '..');


const markdownFiles = execFileSync('git', ['ls-files', '*.md'], { cwd: ROOT, encoding: 'utf8' })
  .split('\n')
  .filter((f) => f !== '' && existsSync(join(ROOT, f)));

/** GitHub's anchor for a heading: lower case, punctuation dropped, spaces as dashes. */
function slug(heading: string): string {
  return heading
    .trim()
    .toLowerCase()
    .replace(/[^\p{L}\p{N}\s_-]/gu, '')
    .replace(/\s/g, '-');
}

function anchorsOf(file: string): Set<string> {
  const text = readFileSync(join(ROOT, file), 'utf8').replace(/```[\s\S]*?```/g, '');
  return new Set([...text.matchAll(/^#{1,6}\s+(.+)$/gm)].map((m) => slug(m[1] ?? '')));
}

describe('docs name only what exists', () => {
  it('finds the Markdown files', () => {
    expect(markdownFiles).toContain('README.md');
    expect(markdownFiles).toContain('docs/architecture.md');
  });

  it.each(markdownFiles)('%s: every repository path in backticks exists', (file) => {
    const text = readFileSync(join(ROOT, file), 'utf8');
    const missing = [...text.matchAll(/`((?:src|test|web|sim|bench|docs|examples|scripts|\.ci)\/[^`\s]*)`/g)]
      .map((m) => m[1] ?? '')
      .filter((path) => !/[<*{]/.test(path))
      .filter((path) => !existsSync(join(ROOT, path)));
    expect(missing).toEqual([]);
  });

  it.each(markdownFiles)('%s: every relative link and its anchor exists', (file) => {
    const text = readFileSync(join(ROOT, file), 'utf8');
    const broken: string[] = [];
    for (const m of text.matchAll(/\]\(([^)\s]+)\)/g)) {
      const link = m[1] ?? '';
      if (/^[a-z]+:/.test(link)) continue;
      const [path = '', anchor] = link.split('#');
      const target = path === '' ? file : normalize(join(dirname(file), path));
      if (!existsSync(join(ROOT, target))) {
        broken.push(link);
        continue;
      }
      if (anchor && target.endsWith('.md') && !anchorsOf(target).has(anchor)) broken.push(link);
    }
    expect(broken).toEqual([]);
  });
});
