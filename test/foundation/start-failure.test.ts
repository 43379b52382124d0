// A start that fails on a port in use closes what it had opened: the proxy listeners and the Admin API bound
// before the failing server are released (a retry, by an embedder or by test/helpers/gateway.ts on
// EADDRINUSE, can bind them again).
import net from 'node:net';
import path from 'node:path';
import { writeFile } from 'node:fs/promises';
import { afterAll, describe, expect, it } from 'vitest';
import { stringify } from 'yaml';
import { parseLocalConfig } from '../../src/config/local.ts';
import { startGateway } from '../../src/main.ts';
import { silentLogger } from '../../src/observability/logger.ts';
import { freePort } from '../helpers/ports.ts';
import { tempDir } from '../helpers/proc.ts';

const servers: net.Server[] = [];
afterAll(async () => {
  for (const s of servers) await new Promise((r) => s.close(r));
});

function canBind(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const srv = net.createServer();
    srv.once('error', () => resolve(false));
    srv.listen({ port, host: '127.0.0.1', exclusive: true }, () => srv.close(() => resolve(true)));
  });
}

describe('start failure', () => {
  it('on a port in use: throws and releases the ports it had bound', async () => {
    const { dir, cleanup } = await tempDir('swy-startfail-');
    try {
      const [http, https, admin, status] = [await freePort(), await freePort(), await freePort(), await freePort()];
      const taken = net.createServer();
      servers.push(taken);
      await new Promise<void>((r) => taken.listen(status, '127.0.0.1', r));
      const conf = {
        apisix: {
          node_listen: [{ ip: '127.0.0.1', port: http }],
          ssl: { listen: [{ ip: '127.0.0.1', port: https }] },
          status: { ip: '127.0.0.1', port: status },
          enable_control: false,
        },
        deployment: {
          role: 'traditional',
          role_traditional: { config_provider: 'yaml' },
          admin: { admin_key: [{ name: 'admin', key: 'start-failure-key-0123456789', role: 'admin' }], admin_listen: { ip: '127.0.0.1', port: admin } },
        },
        switchyard: { worker_processes: 1, access_log: { enable: false } },
        plugin_attr: { prometheus: { enable_export_server: false } },
      };
      const parsed = parseLocalConfig(stringify(conf));
      if (!parsed.ok) throw new Error(parsed.errors.join());
      const configFile = path.join(dir, 'config.yaml');
      await writeFile(configFile, stringify(conf));
      const err = await startGateway({ config: parsed.config, configFile, role: 'all', logger: silentLogger }).catch((e: unknown) => e);
      expect(String((err as Error).message)).toMatch(/EADDRINUSE/);
      // The status server starts last: everything before it had bound and is free again.
      for (const port of [http, https, admin]) expect(await canBind(port), `port ${port}`).toBe(true);
    } finally {
      await cleanup();
    }
  });
});
