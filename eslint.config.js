// Lint rules: typescript-eslint's type-aware recommended set, a guard that keeps wall-clock time
// and timers out of logic code (time must come from the injected Clock), and the layering rules
// (see "Layering" at the end of this file).
import js from '@eslint/js';
import tseslint from 'typescript-eslint';

/** The clock rule: no wall-clock time or timers in src/ outside src/clock and src/cli. */
const CLOCK_TIME = 'Take time from the injected Clock.';
const CLOCK_SCHEDULE = 'Schedule through the injected Clock.';
const SET_TIMER_CALL = 'CallExpression[callee.name=/^set(Timeout|Interval|Immediate)$/]';
const clockBans = [
  { selector: "CallExpression[callee.object.name='Date'][callee.property.name='now']", message: CLOCK_TIME },
  { selector: "NewExpression[callee.name='Date'][arguments.length=0]", message: CLOCK_TIME },
  { selector: SET_TIMER_CALL, message: CLOCK_SCHEDULE },
  { selector: "MemberExpression[object.name='globalThis'][property.name=/^set(Timeout|Interval|Immediate)$/]", message: CLOCK_SCHEDULE },
  { selector: "ImportDeclaration[source.value=/^(node:)?timers(\\/promises)?$/]", message: CLOCK_SCHEDULE },
];

/**
 * The directional layering rules. Each forbids the files in `files` to import modules that the
 * regular expression `target` matches (a relative specifier as written, e.g. `../server/http.js`),
 * with `message` (the rule, in words) as the report. Static imports, `export … from` and
 * type-only imports are checked by no-restricted-imports; dynamic `import()` by a
 * no-restricted-syntax selector on the same expression.
 */
const UP = String.raw`^(?:\.\.\/)+(?:src\/)?`;
const layers = [
  {
    files: ['src/reconciler/**/*.ts'],
    target: String.raw`${UP}(?:server|cli|agent|app|autoscale)(?:\/|$)`,
    message:
      'Layering: the reconciler (src/reconciler) must not import src/server, src/cli, src/agent, src/app or src/autoscale; they drive the reconciler, not the reverse.',
  },
  {
    files: ['src/providers/**/*.ts'],
    target: String.raw`${UP}reconciler(?:\/|$)`,
    message: 'Layering: a provider (src/providers) must not import the reconciler (src/reconciler); the reconciler calls providers, not the reverse.',
  },
  {
    files: ['src/agent/**/*.ts'],
    target: String.raw`${UP}(?:store|reconciler)(?:\/|$)`,
    message:
      'Layering: the agent (src/agent) must not import the store (src/store) or the reconciler (src/reconciler); it runs on the instance and reaches the server only through its connection.',
  },
  // The dashboard: a file `depth` folders below web/ leaves web/ with depth + 1 `../`. Only the
  // API's view types and the pure reconnect backoff may be imported from the rest of the repo.
  ...[0, 1, 2, 3, 4].map((depth) => ({
    files: [`web/${'*/'.repeat(depth)}*.{ts,tsx}`],
    target: String.raw`^(?:\.\.\/){${depth + 1},}(?!src\/server\/views\.js$|src\/util\/backoff\.js$)`,
    message:
      'Layering: the dashboard (web/) must not import anything outside web/ except src/server/views.ts (the API view types) and src/util/backoff.ts; it talks to the server only through the REST API.',
  })),
];
// Fail loudly if the dashboard grows deeper than the depths above cover.
const WEB_DEPTH_GUARD = {
  files: ['web/*/*/*/*/*/**/*.{ts,tsx}'],
  rules: { 'no-restricted-syntax': ['error', { selector: 'Program', message: 'Layering: web/ is deeper than eslint.config.js checks; extend the depths of the dashboard rule.' }] },
};

/** The files each layer rule applies to that the clock rule applies to as well. */
const underClockRule = (files) => files.every((f) => f.startsWith('src/') && !f.startsWith('src/clock/') && !f.startsWith('src/cli/'));

const layerBlocks = layers.map(({ files, target, message }) => ({
  files,
  rules: {
    'no-restricted-imports': ['error', { patterns: [{ regex: target, message }] }],
    // One no-restricted-syntax setting per file: where the clock rule applies, keep its bans.
    'no-restricted-syntax': [
      'error',
      ...(underClockRule(files) ? clockBans : []),
      { selector: `ImportExpression[source.value=/${target}/]`, message },
    ],
  },
}));

export default tseslint.config(
  { ignores: ['dist/**', 'node_modules/**', 'coverage/**', 'web/dist/**'] },
  js.configs.recommended,
  ...tseslint.configs.recommendedTypeChecked,
  {
    languageOptions: {
      parserOptions: { projectService: { allowDefaultProject: ['*.js'] }, tsconfigRootDir: import.meta.dirname },
    },
    rules: {
      '@typescript-eslint/no-explicit-any': 'error',
      '@typescript-eslint/no-unused-vars': ['error', { argsIgnorePattern: '^_', varsIgnorePattern: '^_' }],
      '@typescript-eslint/consistent-type-imports': 'error',
      '@typescript-eslint/no-floating-promises': 'error',
      '@typescript-eslint/require-await': 'off',
    },
  },
  {
    files: ['src/**/*.ts'],
    ignores: ['src/clock/**', 'src/cli/**'],
    rules: { 'no-restricted-syntax': ['error', ...clockBans] },
  },
  ...layerBlocks,
  WEB_DEPTH_GUARD,
  {
    files: ['test/**/*.ts', 'bench/**/*.ts', 'sim/**/*.ts'],
    rules: {
      '@typescript-eslint/no-non-null-assertion': 'off',
      '@typescript-eslint/unbound-method': 'off',
      // vitest's asymmetric matchers (expect.any, expect.stringMatching) are typed `any`.
      '@typescript-eslint/no-unsafe-assignment': 'off',
      '@typescript-eslint/no-unsafe-argument': 'off',
    },
  },
  {
    files: ['*.js'],
    ...tseslint.configs.disableTypeChecked,
  },
);

// Layering (the folders of src/ and web/, and what each may import):
//
// - The reconciler (src/reconciler) must not import src/server, src/cli, src/agent, src/app or src/autoscale.
// - A provider (src/providers) must not import the reconciler.
// - The agent (src/agent) must not import the store (src/store) or the reconciler.
// - The dashboard (web/) must not import anything outside web/ except the API view types
//   (src/server/views.ts) and the reconnect backoff (src/util/backoff.ts).
// - There is no import cycle among the folders of src/ (folder A imports B, B imports A,
//   directly or through other folders). Type-only imports count: they add no cycle at run time
//   but still tie the two folders together.
// - The clock rule: outside src/clock and src/cli, src/ does not read the wall clock
//   (Date.now(), new Date()) or start timers (setTimeout, setInterval, setImmediate, node:timers);
//   time and scheduling come from the injected Clock.
//
// The first four are no-restricted-imports patterns (static imports, `export … from`, type-only
// imports) plus a no-restricted-syntax selector for dynamic import(), above; they match the
// relative specifier as written. The cycle rule is scripts/check-layers.ts, which `npm run lint`
// runs after ESLint. test/lint/layers.test.ts plants one violation of each and checks it is
// reported, and that the tree is clean.
