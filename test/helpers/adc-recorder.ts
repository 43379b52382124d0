// A recording proxy for Admin API clients (ADC, issue 16): it sits between the client and a gateway's Admin API
// and logs every exchange, so test/compat/adc-replay.test.ts can replay a real client's calls in CI where the
// client itself is not installed. Requests are forwarded one at a time, in arrival order: ADC sends some calls
// concurrently, and a serialized transcript is the one order in which every recorded answer was produced by the
// gateway with exactly the earlier recorded calls applied, so a sequential replay must reproduce it.
//
// Values that differ between runs are recorded as placeholders: the echo upstream's port (`${UPSTREAM_PORT}`,
// a whole number or the port of a `host:port` string) and the admin key (`${ADMIN_KEY}`). Only the headers a
// client or the replay depends on are kept.
import http from 'node:http';
import type { AddressInfo } from 'node:net';

export interface RecordedRequest {
  headers: Record<string, string>;
  /** The body parsed as JSON, or `text` when it is not JSON; neither when empty. */
  body?: unknown;
  text?: string;
}

export interface RecordedResponse extends RecordedRequest {
  status: number;
}

export interface Exchange {
  method: string;
  /** Path and query, as the client sent them. */
  path: string;
  request: RecordedRequest;
  response: RecordedResponse;
}

/** One ADC command and the exchanges it made. */
export interface RecordedStep {
  name: string;
  /** ADC's arguments; files are relative to ADC's working directory. */
  args: string[];
  exit_code: number | null;
  exchanges: Exchange[];
}

/** A fixture file under test/compat/fixtures/adc/. */
export interface Recording {
  recorded_by: string;
  adc: { version: string; commit: string };
  backend: 'apisix' | 'apisix-standalone';
  steps: RecordedStep[];
}

/** The run-specific values recorded as placeholders. */
export interface Substitutions {
  UPSTREAM_PORT: number;
  ADMIN_KEY: string;
}

/** Request headers that carry meaning for the Admin API (content negotiation, standalone digest, auth). */
export const REQUEST_HEADERS = ['content-type', 'accept', 'x-digest', 'x-api-key'] as const;
/** Response headers ADC reads (server: the APISIX version; x-last-modified, x-digest: standalone) or checks. */
export const RESPONSE_HEADERS = ['content-type', 'server', 'x-api-version', 'x-digest', 'x-last-modified'] as const;

const PORT_PLACEHOLDER = '${UPSTREAM_PORT}';
const KEY_PLACEHOLDER = '${ADMIN_KEY}';

/** Replaces run-specific values by placeholders (see the file header). */
export function mask(value: unknown, subs: Substitutions): unknown {
  const hostPort = `:${subs.UPSTREAM_PORT}`;
  const walk = (v: unknown): unknown => {
    if (typeof v === 'number') return v === subs.UPSTREAM_PORT ? PORT_PLACEHOLDER : v;
    if (typeof v === 'string') {
      let s = v.split(subs.ADMIN_KEY).join(KEY_PLACEHOLDER);
      // host:port, not a digit run that merely contains the port's digits.
      let at = s.indexOf(hostPort);
      while (at >= 0) {
        const next = s.charCodeAt(at + hostPort.length);
        if (!(next >= 48 && next <= 57)) s = s.slice(0, at) + ':' + PORT_PLACEHOLDER + s.slice(at + hostPort.length);
        at = s.indexOf(hostPort, at + 1);
      }
      return s;
    }
    if (Array.isArray(v)) return v.map(walk);
    if (v !== null && typeof v === 'object') {
      const out: Record<string, unknown> = {};
      for (const [k, x] of Object.entries(v)) out[walk(k) as string] = walk(x);
      return out;
    }
    return v;
  };
  return walk(value);
}

/** The inverse of mask(): a whole `${UPSTREAM_PORT}` string is the port number. */
export function unmask(value: unknown, subs: Substitutions): unknown {
  const port = String(subs.UPSTREAM_PORT);
  const walk = (v: unknown): unknown => {
    if (typeof v === 'string') {
      if (v === PORT_PLACEHOLDER) return subs.UPSTREAM_PORT;
      if (!v.includes('${')) return v;
      return v.split(PORT_PLACEHOLDER).join(port).split(KEY_PLACEHOLDER).join(subs.ADMIN_KEY);
    }
    if (Array.isArray(v)) return v.map(walk);
    if (v !== null && typeof v === 'object') {
      const out: Record<string, unknown> = {};
      for (const [k, x] of Object.entries(v)) out[walk(k) as string] = walk(x);
      return out;
    }
    return v;
  };
  return walk(value);
}

function pickHeaders(h: http.IncomingHttpHeaders, names: readonly string[]): Record<string, string> {
  const out: Record<string, string> = {};
  for (const n of names) {
    const v = h[n];
    if (v !== undefined) out[n] = Array.isArray(v) ? v.join(', ') : v;
  }
  return out;
}

/** A body as recorded: parsed JSON when it is JSON, else text; nothing when empty. */
export function recordBody(text: string): { body?: unknown; text?: string } {
  if (text === '') return {};
  try {
    return { body: JSON.parse(text) as unknown };
  } catch {
    return { text };
  }
}

function readAll(stream: http.IncomingMessage): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    stream.on('data', (c: Buffer) => chunks.push(c));
    stream.on('end', () => resolve(Buffer.concat(chunks)));
    stream.on('error', reject);
  });
}

export interface Recorder {
  /** Base URL to give the client instead of the gateway's Admin API (no /apisix/admin). */
  readonly url: string;
  /** The exchanges recorded since the last take(), oldest first. */
  take(): Exchange[];
  close(): Promise<void>;
}

/**
 * Starts a recording proxy in front of `target` (the gateway's Admin API base URL, without /apisix/admin).
 * Every recorded exchange is checked to survive mask() then unmask() unchanged, so a recording never holds a
 * value the replay would restore wrongly.
 */
export async function startRecorder(target: string, subs: Substitutions): Promise<Recorder> {
  const to = new URL(target);
  let log: Exchange[] = [];
  let queue: Promise<void> = Promise.resolve();
  const failures: string[] = [];

  const checked = (v: unknown, where: string): unknown => {
    const masked = mask(v, subs);
    if (JSON.stringify(unmask(masked, subs)) !== JSON.stringify(v)) failures.push(`${where} does not round-trip through mask/unmask`);
    return masked;
  };

  const forward = async (req: http.IncomingMessage, reqBody: Buffer, res: http.ServerResponse): Promise<void> => {
    const headers = { ...req.headers, host: to.host };
    const upstream = await new Promise<http.IncomingMessage>((resolve, reject) => {
      const r = http.request({ host: to.hostname, port: to.port, method: req.method, path: req.url, headers }, resolve);
      r.on('error', reject);
      r.end(reqBody);
    });
    const resBody = await readAll(upstream);
    const path = req.url ?? '/';
    const where = `${req.method} ${path}`;
    log.push({
      method: req.method ?? 'GET',
      path: checked(path, where) as string,
      request: checked({ headers: pickHeaders(req.headers, REQUEST_HEADERS), ...recordBody(reqBody.toString('utf8')) }, where) as RecordedRequest,
      response: checked({
        status: upstream.statusCode ?? 0,
        headers: pickHeaders(upstream.headers, RESPONSE_HEADERS),
        ...recordBody(resBody.toString('utf8')),
      }, where) as RecordedResponse,
    });
    res.writeHead(upstream.statusCode ?? 502, upstream.headers);
    res.end(resBody);
  };

  const server = http.createServer((req, res) => {
    readAll(req).then((body) => {
      queue = queue.then(() =>
        forward(req, body, res).catch((err: unknown) => {
          failures.push(`${req.method} ${req.url}: ${String(err)}`);
          res.writeHead(502).end();
        }),
      );
    }, () => res.writeHead(400).end());
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;

  return {
    url: `http://127.0.0.1:${port}`,
    take: () => {
      if (failures.length > 0) throw new Error(`recorder: ${failures.join('; ')}`);
      const out = log;
      log = [];
      return out;
    },
    close: async () => {
      await queue;
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}
