/**
 * Builds the dashboard (web/) into dist/web, which `drover server` serves at `/`.
 * Preact's JSX is compiled by Vite's own transform (no Babel); nothing is loaded at run time
 * from anywhere but the server.
 */
import { defineConfig } from 'vite';

export default defineConfig({
  root: import.meta.dirname,
  base: '/',
  publicDir: 'public',
  oxc: { jsx: { runtime: 'automatic', importSource: 'preact' } },
  build: {
    outDir: '../dist/web',
    emptyOutDir: true,
    target: 'es2022',
    assetsInlineLimit: 0,
    modulePreload: { polyfill: false },
    reportCompressedSize: true,
    sourcemap: false,
  },
  logLevel: 'warn',
});
