// A real Prometheus server (Debian package `prometheus`) scraping given targets every second, on a random
// loopback port with a temp TSDB; stopped by pid.
import { writeFile } from 'node:fs/promises';
import path from 'node:path';
import { freePort } from '../helpers/ports.ts';
import { startPeer, tempDir, waitFor } from '../helpers/proc.ts';

export interface PrometheusServer {
  readonly url: string;
  /** Instant query; the result vector. */
  query(expr: string): Promise<{ metric: Record<string, string>; value: [number, string] }[]>;
  /** Waits until every target has been scraped successfully at least once. */
  targetsUp(timeoutMs?: number): Promise<void>;
  stop(): Promise<void>;
}

export async function startPrometheus(targets: readonly string[], metricsPath: string): Promise<PrometheusServer> {
  const { dir, cleanup } = await tempDir('swy-prom-');
  const port = await freePort();
  const conf = path.join(dir, 'prometheus.yml');
  await writeFile(
    conf,
    [
      'global:',
      '  scrape_interval: 1s',
      '  evaluation_interval: 1s',
      'scrape_configs:',
      '  - job_name: switchyard',
      `    metrics_path: ${metricsPath}`,
      '    static_configs:',
      `      - targets: [${targets.map((t) => `'${t}'`).join(', ')}]`,
      '',
    ].join('\n'),
  );
  const peer = startPeer('/usr/bin/prometheus', [
    `--config.file=${conf}`,
    `--storage.tsdb.path=${path.join(dir, 'data')}`,
    `--web.listen-address=127.0.0.1:${port}`,
    '--log.level=warn',
  ]);
  const url = `http://127.0.0.1:${port}`;
  await waitFor(async () => (await fetch(`${url}/-/ready`).catch(() => null))?.ok === true, 15_000, 100);
  return {
    url,
    async query(expr) {
      const r = await fetch(`${url}/api/v1/query?query=${encodeURIComponent(expr)}`);
      const body = (await r.json()) as { status: string; data?: { result: { metric: Record<string, string>; value: [number, string] }[] }; error?: string };
      if (body.status !== 'success') throw new Error(`query ${expr}: ${body.error}`);
      return body.data!.result;
    },
    async targetsUp(timeoutMs = 15_000) {
      await waitFor(async () => {
        const r = (await (await fetch(`${url}/api/v1/targets`)).json()) as { data: { activeTargets: { health: string }[] } };
        const t = r.data.activeTargets;
        return t.length === targets.length && t.every((x) => x.health === 'up');
      }, timeoutMs, 200);
    },
    async stop() {
      await peer.stop();
      await cleanup();
    },
  };
}
