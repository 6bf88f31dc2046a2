import { describe, expect, it } from 'vitest';
import { main } from '../../examples/embed.js';

describe('the embedding example in the README', () => {
  it('runs: brings the group to size and replaces the crashed instance', async () => {
    const lines: string[] = [];
    const live = await main((line) => lines.push(line));
    expect(live).toBe(3);
    expect(lines.some((l) => / delete .* \(terminated\)/.test(l))).toBe(true);
    expect(lines.filter((l) => / create /.test(l))).toHaveLength(4);
  });
});
