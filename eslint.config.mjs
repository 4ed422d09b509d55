import tseslint from 'typescript-eslint';

const TRAINER_BASE = [
  { group: ['vscode'], message: 'trainer/ never imports vscode.' },
  { group: ['**/extension/**', '**/webview/**'], message: 'trainer/ never imports extension/ or webview/.' },
];
/** Folders and files of trainer/ above each layer (as import paths relative to a file one folder down). */
const TOP = ['**/commands/**', '**/cli', '**/main'];
const TRAINING = ['**/train/**', '**/parallel/**', '**/eval', '**/backend', '**/backend_*'];
const ABOVE_MODELS = [...TOP, ...TRAINING];
const ABOVE_LORA = [...ABOVE_MODELS, '**/models/**'];
const ABOVE_OPS = [...ABOVE_LORA, '**/lora/**', '**/tokenizer/**', '**/data/**', '**/config/**', '**/analysis/**'];
const ABOVE_IO = [...ABOVE_OPS, '**/ops/**'];
const ABOVE_UTIL = [...ABOVE_IO, '**/io/**'];
const trainerLayer = (files, group, message) => [{ files, rules: { 'no-restricted-imports': ['error', { patterns: [...TRAINER_BASE, { group, message }] }] } }];

export default tseslint.config(
  { ignores: ['node_modules/**', 'dist/**', 'out/**', 'test-results/**', '.vscode-test/**', 'bench/device-bundle/**'] },
  ...tseslint.configs.recommended,
  {
    rules: {
      '@typescript-eslint/no-unused-vars': ['error', { argsIgnorePattern: '^_', varsIgnorePattern: '^_' }],
    },
  },
  {
    // The `lora-studio` launcher is plain CommonJS that requires the built CLI.
    files: ['bin/**/*.js'],
    languageOptions: { sourceType: 'commonjs', globals: { require: 'readonly', process: 'readonly', __dirname: 'readonly' } },
    rules: { '@typescript-eslint/no-require-imports': 'off' },
  },
  {
    // Import boundaries: the trainer runs without VS Code and never sees the other sides.
    files: ['trainer/**/*.ts'],
    rules: { 'no-restricted-imports': ['error', { patterns: TRAINER_BASE }] },
  },
  // Layers inside trainer/, each importing only downward (a later block's patterns replace the base list for its
  // files, so each repeats it). From the bottom:
  //   protocol.ts (imports nothing) · errors.ts, task.ts · util/ · io/ · ops/ (kernels: GEMM, layers, attention
  //   mask) · tokenizer/, data/, config/, analysis/ · lora/ (knows no model family) · models/ (family.ts,
  //   registry.ts, one folder per family: may import lora/ and ops/) · train/, parallel/, eval.ts · commands/,
  //   cli.ts, main.ts on top.
  ...trainerLayer(['trainer/protocol.ts'], ['./*', '../*'], 'protocol.ts is the leaf: it imports nothing from the trainer.'),
  ...trainerLayer(['trainer/util/**/*.ts'], ABOVE_UTIL, 'util/ imports nothing above it (only errors.ts).'),
  ...trainerLayer(['trainer/io/**/*.ts'], ABOVE_IO, 'io/ imports only util/ and errors.ts.'),
  ...trainerLayer(['trainer/ops/**/*.ts'], ABOVE_OPS, 'ops/ imports only io/, util/ and errors.ts.'),
  ...trainerLayer(['trainer/lora/**/*.ts'], ABOVE_LORA, 'lora/ knows no model family: it never imports models/ (nor train/, parallel/, commands/).'),
  ...trainerLayer(['trainer/tokenizer/**/*.ts', 'trainer/data/**/*.ts', 'trainer/config/**/*.ts', 'trainer/analysis/**/*.ts'], ABOVE_LORA, 'tokenizer/, data/, config/ and analysis/ sit below models/: they never import models/, train/, parallel/ or commands/.'),
  ...trainerLayer(['trainer/models/**/*.ts'], ABOVE_MODELS, 'models/ may import lora/ and ops/, never train/, parallel/ or commands/.'),
  {
    files: ['webview/**/*.ts'],
    rules: {
      'no-restricted-imports': ['error', { patterns: [
        { group: ['vscode'], message: 'webview/ runs in a browser frame: no vscode module.' },
        { group: ['**/extension/**', '**/trainer/**'], message: 'webview/ never imports extension/ or trainer/.' },
      ] }],
    },
  },
  {
    // The extension may import only the protocol files of the other sides, and only their types:
    // - any import (type-only included) from trainer/ or webview/ other than their protocol file is an error;
    // - a run-time import (one that is not `import type` / `export type`) from trainer/ or webview/ is an error.
    files: ['extension/**/*.ts'],
    rules: {
      'no-restricted-imports': ['error', { patterns: [
        { regex: '(^|/)(trainer|webview)/(?!protocol$).*', message: 'extension/ imports only trainer/protocol and webview/protocol.' },
      ] }],
      '@typescript-eslint/no-restricted-imports': ['error', { patterns: [
        {
          group: ['**/trainer', '**/trainer/**', '**/webview', '**/webview/**'],
          allowTypeImports: true,
          message: 'extension/ imports only the TYPES of trainer/protocol and webview/protocol (use `import type`); run-time code of the other sides stays there.',
        },
      ] }],
      '@typescript-eslint/consistent-type-imports': 'error',
      // `import { type A }` could stay behind as a side-effect import (verbatimModuleSyntax); write `import type`.
      '@typescript-eslint/no-import-type-side-effects': 'error',
    },
  },
);
