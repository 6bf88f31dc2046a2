/** The package version: read once, in src/util/version.ts (the providers need it too, for the agent they install). */
export { VERSION } from '../util/version.js';
