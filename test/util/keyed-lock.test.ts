/** KeyedLock: calls on one key run one at a time, in call order; other keys do not wait. */
import { describe, expect, it } from 'vitest';
import { KeyedLock } from '../../src/util/keyed-lock.js';

/** A promise and the function that settles it. */
function gate(): { opened: Promise<void>; open: () => void } {
  let open: () => void = () => undefined;
  const opened = new Promise<void>((resolve) => {
    open = resolve;
  });
  return { opened, open };
}

describe('KeyedLock', () => {
  it('runs calls on one key one after the other, in call order, and does not hold other keys', async () => {
    const lock = new KeyedLock();
    const order: string[] = [];
    const first = gate();
    const a1 = lock.run('a', async () => {
      order.push('a1 start');
      await first.opened;
      order.push('a1 end');
    });
    const a2 = lock.run('a', async () => {
      order.push('a2');
    });
    await lock.run('b', async () => {
      order.push('b');
    });
    expect(lock.isBusy('a')).toBe(true);
    expect(lock.isBusy('b')).toBe(false);
    first.open();
    await Promise.all([a1, a2]);
    expect(order).toEqual(['a1 start', 'b', 'a1 end', 'a2']);
    expect(lock.isBusy('a')).toBe(false);
  });

  it('releases the key when a call throws, and passes on its result or error', async () => {
    const lock = new KeyedLock();
    await expect(lock.run('a', async () => Promise.reject(new Error('failed')))).rejects.toThrow('failed');
    await expect(lock.run('a', async () => 42)).resolves.toBe(42);
    expect(lock.isBusy('a')).toBe(false);
  });
});
