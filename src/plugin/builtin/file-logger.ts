// file-logger (APISIX priority 399): appends each entry as one JSON line to `path` (no batching, as APISIX).
// Writes go through one append stream per path, so the request never waits on the disk.
import { createWriteStream, type WriteStream } from 'node:fs';
import type { HttpContext } from '../context.ts';
import type { PhaseResult, PluginDef, PluginInstance } from '../plugin.ts';
import { LOG_METADATA_SCHEMA, logEntry, loggerSchema, logOptions, requestBodyPhase, responseBodyPhase, type LogOptions } from './log-common.ts';

const NAME = 'file-logger';

const schema = loggerSchema({ path: { type: 'string' } }, ['path'], null);

const streams = new Map<string, { stream: WriteStream; refs: number }>();

function openStream(path: string): WriteStream {
  let s = streams.get(path);
  if (s === undefined) {
    const stream = createWriteStream(path, { flags: 'a' });
    stream.on('error', () => undefined);
    s = { stream, refs: 0 };
    streams.set(path, s);
  }
  s.refs++;
  return s.stream;
}

function closeStream(path: string): void {
  const s = streams.get(path);
  if (s === undefined) return;
  setImmediate(() => {
    if (--s.refs > 0) return;
    streams.delete(path);
    s.stream.end();
  });
}

class FileLogger implements PluginInstance {
  readonly #opts: LogOptions;
  readonly #path: string;
  readonly #stream: WriteStream;
  access?: (ctx: HttpContext) => PhaseResult | Promise<PhaseResult>;
  body_filter?: (ctx: HttpContext, chunk: Buffer) => Buffer;

  constructor(path: string, opts: LogOptions) {
    this.#path = path;
    this.#opts = opts;
    this.#stream = openStream(path);
    if (opts.includeReqBody) this.access = requestBodyPhase(opts);
    if (opts.includeRespBody) this.body_filter = responseBodyPhase(opts);
  }

  log(ctx: HttpContext): void {
    this.#stream.write(`${JSON.stringify(logEntry(ctx, this.#opts))}\n`);
  }

  destroy(): void {
    closeStream(this.#path);
  }
}

export const fileLoggerPlugin: PluginDef = {
  name: NAME,
  version: '0.1',
  priority: 399,
  schema,
  metadataSchema: LOG_METADATA_SCHEMA,
  subsystems: ['http'],
  status: 'stable',
  create(conf, env) {
    return new FileLogger(String(conf.path), logOptions(conf, env));
  },
};

export default fileLoggerPlugin;
