// Lint: typescript-eslint's recommended rules plus the layering rule of ARCHITECTURE.md (src/ never imports
// protocols/ or stream-routes/, except the composition root src/main.ts).
import tseslint from 'typescript-eslint';

export default tseslint.config(
  { ignores: ['node_modules/**', 'bench/results/**', 'build/**', 'test-output/**'] },
  ...tseslint.configs.recommended,
  {
    rules: {
      '@typescript-eslint/no-explicit-any': 'off',
      '@typescript-eslint/no-unused-vars': ['error', { argsIgnorePattern: '^_', varsIgnorePattern: '^_' }],
      'no-empty': ['error', { allowEmptyCatch: true }],
    },
  },
  {
    files: ['src/**/*.ts'],
    ignores: ['src/main.ts'],
    rules: {
      'no-restricted-imports': [
        'error',
        { patterns: [{ group: ['**/protocols/**', '**/stream-routes/**'], message: 'src/ must not depend on listeners (only src/main.ts wires them)' }] },
      ],
    },
  },
);
