import { afterEach, describe, expect, it } from 'vitest';
import { Harness, configWith } from '../helpers/harness.js';

let h: Harness;
afterEach(async () => h?.close());

describe('smoke', () => {
  it('scales a group from zero to its size', async () => {
    h = new Harness({ config: configWith({ default: { web: { size: 3, template: 'web' } } }) });
    await h.start();
    expect(h.byStatus('running')).toHaveLength(3);
    expect(h.cloud()).toHaveLength(3);
  });
});
