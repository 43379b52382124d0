// The HTTP client of the batching loggers that post to a log service (elasticsearch-logger,
// splunk-hec-logging, loki-logger): one undici Agent per plugin conf, made on the first batch (confs of
// instances that never send cost nothing), with ssl_verify, keep-alive settings, and one deadline over the
// whole exchange (queueing, connect, send, answer) so a receiver that accepts and never answers, or stops
// reading, releases its batch slot after `timeout`. Runs once per batch, never per request.
import { Agent, request } from 'undici';

export interface SinkHttpOptions {
  readonly sslVerify: boolean;
  /** Deadline of one exchange, milliseconds. */
  readonly timeoutMs: number;
  /** Idle keep-alive sockets close after this long (lua-resty-http keepalive_timeout). */
  readonly keepAliveTimeoutMs?: number;
  /** false: one connection per batch (loki-logger `keepalive: false`). */
  readonly keepalive?: boolean;
  /** Sockets per origin (lua-resty-http keepalive_pool, as forward-auth maps it). */
  readonly connections?: number;
}

export interface SinkResponse {
  readonly status: number;
  readonly body: string;
}

export class SinkHttp {
  readonly #opts: SinkHttpOptions;
  #agent: Agent | null = null;

  constructor(opts: SinkHttpOptions) {
    this.#opts = opts;
  }

  #dispatcher(): Agent {
    this.#agent ??= new Agent({
      connect: { rejectUnauthorized: this.#opts.sslVerify, timeout: this.#opts.timeoutMs },
      keepAliveTimeout: this.#opts.keepAliveTimeoutMs ?? 60_000,
      ...(this.#opts.connections !== undefined ? { connections: this.#opts.connections } : {}),
    });
    return this.#agent;
  }

  /** Rejects on a network error or the deadline; any status resolves (the caller decides what fails). */
  async send(method: 'GET' | 'POST', url: string, headers: Record<string, string>, body?: string): Promise<SinkResponse> {
    const res = await request(url, {
      method,
      headers,
      ...(body !== undefined ? { body } : {}),
      dispatcher: this.#dispatcher(),
      signal: AbortSignal.timeout(this.#opts.timeoutMs),
      reset: this.#opts.keepalive === false,
    });
    return { status: res.statusCode, body: await res.body.text() };
  }
}
