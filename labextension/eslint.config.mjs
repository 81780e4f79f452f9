// ESLint for the extension's TypeScript, as the JupyterLab extension template sets it up
// (typescript-eslint's recommended rules, formatting left to prettier), plus the rules
// this project holds to: no `any` unless a comment disables the rule and says why.
import js from '@eslint/js';
import prettierConfig from 'eslint-config-prettier';
import globals from 'globals';
import tseslint from 'typescript-eslint';

export default tseslint.config(
  {
    ignores: ['node_modules', 'lib', 'lib-test', '.yarn', '**/*.js', '**/*.d.ts']
  },
  js.configs.recommended,
  ...tseslint.configs.recommended,
  {
    files: ['**/*.ts'],
    languageOptions: {
      globals: { ...globals.browser, ...globals.es2021 },
      parserOptions: { sourceType: 'module' }
    },
    rules: {
      '@typescript-eslint/no-explicit-any': 'error',
      '@typescript-eslint/no-unused-vars': ['error', { args: 'none' }],
      '@typescript-eslint/no-namespace': 'off',
      curly: ['error', 'all'],
      eqeqeq: 'error',
      'prefer-arrow-callback': 'error'
    }
  },
  {
    // The node:test tests run under Node.
    files: ['test/**/*.ts'],
    languageOptions: { globals: { ...globals.node } }
  },
  prettierConfig
);
