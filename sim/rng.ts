/**
 * Seeded randomness for the simulator. Everything random in a run comes from here, so a seed
 * gives the same run byte for byte.
 */
import { seededRandom, type Random } from '../src/util/random.js';

/** A seeded stream with the draws the generator needs. */
export class Rng {
  readonly next: Random;

  constructor(seed: number) {
    this.next = seededRandom(seed);
  }

  /** Integer in [min, max], both included. */
  int(min: number, max: number): number {
    return min + Math.floor(this.next() * (max - min + 1));
  }

  /** True with probability `p`. */
  chance(p: number): boolean {
    return this.next() < p;
  }

  pick<T>(items: readonly T[]): T {
    const item = items[Math.floor(this.next() * items.length)];
    if (item === undefined) throw new Error('Rng.pick: empty list');
    return item;
  }

  /** Picks a key of `weights` with probability proportional to its weight. */
  weighted<K extends string>(weights: Readonly<Record<K, number>>): K {
    const entries = Object.entries(weights) as Array<[K, number]>;
    const total = entries.reduce((sum, [, w]) => sum + w, 0);
    let x = this.next() * total;
    for (const [key, w] of entries) {
      x -= w;
      if (x < 0) return key;
    }
    const last = entries[entries.length - 1];
    if (!last) throw new Error('Rng.weighted: no weights');
    return last[0];
  }
}

/** FNV-1a of a string, mixed with a seed: a stable number for (seed, name). */
export function hash32(seed: number, text: string): number {
  let h = (0x811c9dc5 ^ seed) >>> 0;
  for (let i = 0; i < text.length; i++) {
    h ^= text.charCodeAt(i);
    h = Math.imul(h, 0x01000193) >>> 0;
  }
  // Final avalanche (murmur3 fmix32).
  h ^= h >>> 16;
  h = Math.imul(h, 0x85ebca6b) >>> 0;
  h ^= h >>> 13;
  h = Math.imul(h, 0xc2b2ae35) >>> 0;
  h ^= h >>> 16;
  return h >>> 0;
}

/** A number in [0, 1) fixed by (seed, name): per-instance behaviour that survives shrinking. */
export function unit(seed: number, text: string): number {
  return hash32(seed, text) / 4_294_967_296;
}
