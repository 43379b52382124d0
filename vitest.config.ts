import { defineConfig } from 'vitest/config';

// Two projects: the whole suite on the default engines, and the HTTP e2e suite (test/http) once more on the
// other HTTP/1.1 downstream engine (node:http, protocols/http/node-adapter.ts; the default is the socket-level
// one, protocols/http1), so both paths stay green (issue 19). Gateways started by the tests, in-process or as
// child processes, read SWITCHYARD_HTTP1_ENGINE (src/config/local.ts).
export default defineConfig({
  test: {
    testTimeout: 30_000,
    hookTimeout: 60_000,
    pool: 'forks',
    fileParallelism: true,
    maxWorkers: 2,
    reporters: ['default'],
    projects: [
      { extends: true, test: { name: 'default', include: ['test/**/*.test.ts'] } },
      { extends: true, test: { name: 'http-node-engine', include: ['test/http/**/*.test.ts'], env: { SWITCHYARD_HTTP1_ENGINE: 'node' } } },
    ],
  },
});
