// A real clickhouse-server (Debian package) on random loopback ports with a temp data dir, stopped by pid.
// Users: `default` (no password) for the test's own queries and `logger` / `secret` for the plugin under test.
import { writeFile } from 'node:fs/promises';
import path from 'node:path';
import { freePort } from './ports.ts';
import { startPeer, tempDir, waitFor, type Peer } from './proc.ts';

export interface ClickHouse {
  readonly url: string;
  readonly peer: Peer;
  /** Runs a query as `default` over the HTTP interface; rejects on a non-200 answer. */
  query(sql: string): Promise<string>;
  stop(): Promise<void>;
}

export const CLICKHOUSE_BIN = '/usr/sbin/clickhouse-server';

export async function startClickHouse(): Promise<ClickHouse> {
  const { dir, cleanup } = await tempDir('swy-ch-');
  const [httpPort, tcpPort] = [await freePort(), await freePort()];
  await writeFile(
    path.join(dir, 'config.xml'),
    `<?xml version="1.0"?>
<yandex>
  <logger><level>warning</level><console>1</console></logger>
  <http_port>${httpPort}</http_port>
  <tcp_port>${tcpPort}</tcp_port>
  <listen_host>127.0.0.1</listen_host>
  <path>${dir}/data/</path>
  <tmp_path>${dir}/tmp/</tmp_path>
  <users_config>${dir}/users.xml</users_config>
  <default_profile>default</default_profile>
  <default_database>default</default_database>
  <mark_cache_size>67108864</mark_cache_size>
</yandex>
`,
  );
  const user = (name: string, password: string) =>
    `<${name}><password>${password}</password><networks><ip>127.0.0.1</ip></networks><profile>default</profile><quota>default</quota></${name}>`;
  await writeFile(
    path.join(dir, 'users.xml'),
    `<?xml version="1.0"?>
<yandex>
  <profiles><default></default></profiles>
  <users>${user('default', '')}${user('logger', 'secret')}</users>
  <quotas><default></default></quotas>
</yandex>
`,
  );
  const peer = startPeer(CLICKHOUSE_BIN, [`--config-file=${path.join(dir, 'config.xml')}`], { cwd: dir });
  const url = `http://127.0.0.1:${httpPort}/`;
  await waitFor(async () => (await fetch(`${url}ping`).catch(() => null))?.ok === true, 15_000, 50);
  return {
    url,
    peer,
    async query(sql) {
      const res = await fetch(url, { method: 'POST', body: sql });
      const text = await res.text();
      if (res.status !== 200) throw new Error(`clickhouse ${res.status}: ${text}`);
      return text;
    },
    async stop() {
      await peer.stop();
      await cleanup();
    },
  };
}
