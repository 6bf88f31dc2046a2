/**
 * The reconciler's vocabulary of reasons. Declared with the instance records that carry them
 * (src/store/reasons.ts), so that the store's types name them too; the reconciler's code and the
 * tools that read its audit import them from here.
 */
export * from '../store/reasons.js';
