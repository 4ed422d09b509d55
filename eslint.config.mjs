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
    // The extension may import only the protocol files of the other sides, and only their types.
    files: ['extension/**/*.ts'],
    rules: {
      'no-restricted-imports': ['error', { patterns: [
        { regex: '(^|/)(trainer|webview)/(?!protocol$).*', message: 'extension/ imports only trainer/protocol and webview/protocol.' },
      ] }],
      '@typescript-eslint/consistent-type-imports': 'error',
    },
  },
);
