/**
 * The rule for tools tests need (test/helpers/tools.ts): only DROVER_REQUIRE_TOOLS=1 turns a
 * missing tool into failures; CI=true alone does not.
 */
import { describe, expect, it } from 'vitest';
import { CHROMIUM_TOOL, ETCD_TOOL, missingToolMessage, onPath, PROMTOOL_TOOL, toolRule } from './tools.js';

describe('tools tests need', () => {
  it('runs with the tool; without it fails only under DROVER_REQUIRE_TOOLS=1, else skips', () => {
    expect(toolRule(true, {})).toBe('run');
    expect(toolRule(true, { DROVER_REQUIRE_TOOLS: '1' })).toBe('run');
    expect(toolRule(false, { DROVER_REQUIRE_TOOLS: '1' })).toBe('fail');
    expect(toolRule(false, { DROVER_REQUIRE_TOOLS: '1', CI: 'true' })).toBe('fail');
    expect(toolRule(false, {})).toBe('skip');
    expect(toolRule(false, { CI: 'true' })).toBe('skip');
    expect(toolRule(false, { DROVER_REQUIRE_TOOLS: '0' })).toBe('skip');
  });

  it('names the Debian package .ci/run installs for each tool', () => {
    expect(missingToolMessage(ETCD_TOOL)).toContain('apt-get install etcd-server');
    expect(missingToolMessage(PROMTOOL_TOOL)).toContain('apt-get install prometheus');
    expect(missingToolMessage(CHROMIUM_TOOL)).toContain('apt-get install chromium');
  });

  it('finds commands on the PATH, and says null for one that is not there', () => {
    expect(onPath('sh')).toMatch(/\/sh$/);
    expect(onPath('drover-no-such-command-here')).toBeNull();
  });
});
