// `switchyard start` runs in the foreground until SIGTERM/SIGINT, then drains in-flight requests and exits 0.
import http from 'node:http';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { tempDir, waitFor } from '../helpers/proc.ts';
import { startEcho, type EchoServer } from '../helpers/upstream.ts';
import { KEY, admin, baseConfig, get, killAll, ports, served, startCli, writeConfig } from './cli-helpers.ts';

// Each test spawns the CLI (a cold Node start loading the TypeScript sources); generous on a loaded machine.
vi.setConfig({ testTimeout: 60_000 });

let echo: EchoServer;

beforeAll(async () => {
  echo = await startEcho('slow');
});
afterAll(async () => {
  await killAll();
  await echo.close();
});

describe.each(['SIGTERM', 'SIGINT'] as const)('%s', (signal) => {
  it('lets the in-flight request complete, refuses new connections, and exits 0', async () => {
    const { dir, cleanup } = await tempDir('swy-sig-');
    try {
      const p = await ports();
      const gw = await startCli(await writeConfig(dir, baseConfig(p)), p.status);
      expect((await admin(p, 'PUT', '/routes/slow', { uri: '/*', upstream: { type: 'roundrobin', nodes: { [echo.addr]: 1 } } })).status).toBe(201);
      await served(`http://127.0.0.1:${p.http}/ping`);

      // Idle keep-alive connections (data plane, Admin API, status) must not hold the exit.
      const agent = new http.Agent({ keepAlive: true });
      for (const u of [`http://127.0.0.1:${p.http}/ping`, `http://127.0.0.1:${p.admin}/apisix/admin/routes`, `http://127.0.0.1:${p.status}/status`]) {
        await new Promise<void>((resolve, reject) => {
          http.get(u, { agent, headers: { 'x-api-key': KEY } }, (res) => res.resume().on('end', resolve)).on('error', reject);
        });
      }
      expect(Object.values(agent.freeSockets).flat().length).toBe(3);

      const before = echo.seen.length;
      const slow = get(`http://127.0.0.1:${p.http}/delay/1500`);
      await waitFor(() => echo.seen.length > before, 5000, 10);
      process.kill(gw.peer.pid, signal);

      const res = await slow;
      expect(res.status).toBe(200);
      expect(JSON.parse(res.body).url).toBe('/delay/1500');
      expect(await gw.exited).toBe(0);
      agent.destroy();
      await expect(get(`http://127.0.0.1:${p.http}/ping`, { timeoutMs: 2000 })).rejects.toThrow();
    } finally {
      await cleanup();
    }
  }, 60_000);
});
