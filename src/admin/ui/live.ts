// Data sources of the dashboard's live views that the Admin API does not serve: the Control API's health
// report (loopback, no CORS, so the admin server fetches it for the browser), the Prometheus exporter's text and
// the effective local configuration with secrets redacted. Each is optional: the view says what is missing.
import type { LocalConfig } from '../../config/local.ts';

export interface UiSources {
  /** Base URL of the Control API (`http://127.0.0.1:9090`), or null when it is not running. */
  readonly controlUrl?: () => string | null;
  /** Full URL of the Prometheus scrape endpoint, or null when there is none. */
  readonly metricsUrl?: () => string | null;
  /** The parsed config.yaml with defaults applied; redacted before it leaves. */
  readonly localConfig?: unknown;
}

const FETCH_TIMEOUT_MS = 3_000;
const MAX_METRICS_BYTES = 8 * 1024 * 1024;

function hostPort(ip: string, port: number): string {
  const host = ip === '0.0.0.0' ? '127.0.0.1' : ip === '::' ? '[::1]' : ip.includes(':') ? `[${ip}]` : ip;
  return `${host}:${port}`;
}

/** The sources of a gateway process, for the composition root: `ui: uiSourcesFor(conf, () => health.controlPort())`. */
export function uiSourcesFor(conf: LocalConfig, controlPort: () => number | null): UiSources {
  const control = (conf.apisix as { control?: { ip?: string } }).control;
  const prom = (conf.plugin_attr as Record<string, unknown> | undefined)?.prometheus as
    | { export_addr?: { ip?: string; port?: number }; export_uri?: string; enable_export_server?: boolean }
    | undefined;
  const metrics =
    prom?.enable_export_server === false
      ? null
      : `http://${hostPort(prom?.export_addr?.ip ?? '127.0.0.1', prom?.export_addr?.port ?? 9091)}${prom?.export_uri ?? '/apisix/prometheus/metrics'}`;
  return {
    controlUrl: () => {
      const port = controlPort();
      return port === null ? null : `http://${hostPort(control?.ip ?? '127.0.0.1', port)}`;
    },
    metricsUrl: () => metrics,
    localConfig: conf,
  };
}

export async function fetchControlHealth(sources: UiSources): Promise<{ status: number; body: unknown }> {
  const base = sources.controlUrl?.() ?? null;
  if (base === null) return { status: 503, body: { error_msg: 'the Control API is not enabled (apisix.enable_control)' } };
  try {
    const res = await fetch(`${base}/v1/healthcheck`, { signal: AbortSignal.timeout(FETCH_TIMEOUT_MS) });
    const text = await res.text();
    if (!res.ok) return { status: 502, body: { error_msg: `Control API answered ${res.status}` } };
    return { status: 200, body: text.trim() === '' ? [] : (JSON.parse(text) as unknown) };
  } catch (err) {
    return { status: 502, body: { error_msg: `Control API unreachable: ${(err as Error).message}` } };
  }
}

export async function fetchMetricsText(sources: UiSources): Promise<{ ok: true; text: string } | { ok: false; error: string }> {
  const url = sources.metricsUrl?.() ?? null;
  if (url === null) return { ok: false, error: 'no Prometheus export server is configured' };
  try {
    const res = await fetch(url, { signal: AbortSignal.timeout(FETCH_TIMEOUT_MS) });
    if (!res.ok) return { ok: false, error: `metrics endpoint answered ${res.status}` };
    const text = await res.text();
    if (text.length > MAX_METRICS_BYTES) return { ok: false, error: 'metrics text too large' };
    return { ok: true, text };
  } catch (err) {
    return { ok: false, error: `metrics endpoint unreachable: ${(err as Error).message}` };
  }
}

const SECRET_NAME = /(^|_)(key|keys|secret|secrets|password|passwd|pass|token|keyring|credentials?)$|private|api_key/i;
export const REDACTED = '******';

/** A deep copy with every secret-looking leaf (by key name) replaced by REDACTED; structure is kept. */
export function redact(value: unknown, name = ''): unknown {
  const secret = name !== '' && SECRET_NAME.test(name);
  if (Array.isArray(value)) return value.map((v) => redact(v, secret && typeof v !== 'object' ? name : ''));
  if (value !== null && typeof value === 'object') {
    const out: Record<string, unknown> = {};
    for (const [k, v] of Object.entries(value)) out[k] = redact(v, k);
    return out;
  }
  if (secret && value !== undefined && value !== null && value !== '') return REDACTED;
  return value;
}

export function redactedConfig(sources: UiSources): unknown {
  return sources.localConfig === undefined ? null : redact(sources.localConfig);
}
