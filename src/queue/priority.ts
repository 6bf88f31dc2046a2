/**
 * Work priorities, most urgent first. Urgent work (an instance that died, a termination notice)
 * never waits behind bulk work (a large scale-up, a rotation).
 */
export const Priority = {
  urgent: 0,
  high: 1,
  normal: 2,
  bulk: 3,
} as const;
export type Priority = (typeof Priority)[keyof typeof Priority];
export const PRIORITY_NAMES: Record<Priority, string> = { 0: 'urgent', 1: 'high', 2: 'normal', 3: 'bulk' };
export const PRIORITIES: readonly Priority[] = [Priority.urgent, Priority.high, Priority.normal, Priority.bulk];

/** A first-in first-out list with O(1) push and shift. */
export class Fifo<T> {
  private items: Array<T | undefined> = [];
  private head = 0;

  get length(): number {
    return this.items.length - this.head;
  }

  push(item: T): void {
    this.items.push(item);
  }

  peek(): T | undefined {
    return this.items[this.head];
  }

  shift(): T | undefined {
    if (this.head >= this.items.length) return undefined;
    const item = this.items[this.head];
    this.items[this.head] = undefined;
    this.head++;
    if (this.head > 1024 && this.head * 2 > this.items.length) {
      this.items = this.items.slice(this.head);
      this.head = 0;
    }
    return item;
  }

  /** Removes and returns the first item matching `predicate`. */
  take(predicate: (item: T) => boolean): T | undefined {
    for (let i = this.head; i < this.items.length; i++) {
      const item = this.items[i] as T;
      if (predicate(item)) {
        if (i === this.head) return this.shift();
        this.items.splice(i, 1);
        return item;
      }
    }
    return undefined;
  }

  *[Symbol.iterator](): Iterator<T> {
    for (let i = this.head; i < this.items.length; i++) yield this.items[i] as T;
  }
}
