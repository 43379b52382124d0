#!/usr/bin/env node
// Entry point of the `switchyard` command. The project pins Node 24 (npm package `node`), which runs the
// TypeScript sources directly.
const [major] = process.versions.node.split('.').map(Number);
if (major < 24) {
  console.error(`switchyard needs Node.js >= 24 (running ${process.version}); run it through npm/npx so the pinned Node is used`);
  process.exit(1);
}
await import('../src/cli.ts');
