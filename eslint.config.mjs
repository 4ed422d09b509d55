import tseslint from 'typescript-eslint';

export default tseslint.config(
  { ignores: ['node_modules/**', 'dist/**', 'out/**', 'test-results/**', '.vscode-test/**'] },
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
    rules: {
      'no-restricted-imports': ['error', { patterns: [
        { group: ['vscode'], message: 'trainer/ never imports vscode.' },
        { group: ['**/extension/**', '**/webview/**'], message: 'trainer/ never imports extension/ or webview/.' },
      ] }],
    },
  },
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
