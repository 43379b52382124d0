// Streaming a proxied response to the client: the upstream body written straight into the response (through
// body_filter plugins when the chains have any) with backpressure both ways, trailers after the body, bytes
// counted for the access log, and exactly one log phase whether the body ends, the upstream aborts or the
// client goes away. No stream sits in between: the dispatcher calls this module's sink per chunk.
import type { ServerResponse } from 'node:http';
import type { PluginChain } from '../../src/plugin/chain.ts';
import { runBodyFilter } from '../../src/plugin/runner.ts';
import type { HttpRuntime } from '../../src/runtime/types.ts';
import type { BodySink, ProxiedResponse } from '../../src/upstream/dispatch.ts';
import type { Logger } from '../../src/observability/logger.ts';
import type { RequestContext } from './context.ts';
import type { AnyResponse } from './respond.ts';

/** What the streaming side needs from the handler. */
export interface ResponseLogger {
  readonly opts: { readonly logger: Logger };
  log(ctx: RequestContext, rt: Pick<HttpRuntime, 'global'>, chain: PluginChain | null, bytes: number): void;
}

const EMPTY = Buffer.alloc(0);

/** Sends `result`'s body into `res` (whose head is already written). */
export function streamResponse(
  handler: ResponseLogger,
  ctx: RequestContext,
  rt: HttpRuntime,
  chain: PluginChain,
  result: ProxiedResponse,
  res: AnyResponse,
  filtering: boolean,
): void {
  // hot path
  const st = new Streaming(handler, ctx, rt, chain, result, res, filtering);
  // The listeners are module-level functions that find this state on the emitter (no per-request closures).
  (res as Tagged)[kStreaming] = st;
  res.on('drain', onDrain);
  res.once('close', onClientClose);
  result.pipeTo(st);
}

const kStreaming = Symbol('switchyard.streaming');
type Tagged = { [kStreaming]?: Streaming };

/** One proxied response being streamed to the client: counts the bytes and logs exactly once. */
class Streaming implements BodySink {
  bytes = 0;
  done = false;
  readonly handler: ResponseLogger;
  readonly ctx: RequestContext;
  readonly rt: HttpRuntime;
  readonly chain: PluginChain;
  readonly result: ProxiedResponse;
  readonly res: AnyResponse;
  readonly filtering: boolean;

  constructor(
    handler: ResponseLogger,
    ctx: RequestContext,
    rt: HttpRuntime,
    chain: PluginChain,
    result: ProxiedResponse,
    res: AnyResponse,
    filtering: boolean,
  ) {
    this.handler = handler;
    this.ctx = ctx;
    this.rt = rt;
    this.chain = chain;
    this.result = result;
    this.res = res;
    this.filtering = filtering;
  }

  write(chunk: Buffer): boolean {
    // hot path
    if (this.done) return true;
    let out: Buffer | null = chunk;
    if (this.filtering) {
      out = runBodyFilter(this.rt.global, this.chain, this.ctx, chunk, false);
      if (out === null || out.length === 0) return true;
    }
    this.bytes += out.length;
    return (this.res as ServerResponse).write(out);
  }

  end(trailers: Record<string, string>): void {
    if (this.done) return;
    const res = this.res as ServerResponse;
    if (this.filtering) {
      const out = runBodyFilter(this.rt.global, this.chain, this.ctx, EMPTY, true);
      if (out !== null && out.length > 0) {
        this.bytes += out.length;
        res.write(out);
      }
    }
    for (const _ in trailers) {
      res.addTrailers(trailers);
      break;
    }
    res.end();
    this.finish();
  }

  error(err: Error): void {
    if (this.done) return;
    this.handler.opts.logger.warn({ err: err.message, route: this.ctx.routeId }, 'upstream body aborted');
    this.res.destroy();
    this.finish();
  }

  finish(): void {
    if (this.done) return;
    this.done = true;
    this.handler.log(this.ctx, this.rt, this.chain, this.bytes);
  }
}

function onDrain(this: AnyResponse): void {
  (this as Tagged)[kStreaming]!.result.resume();
}

/** The client went away (or the response ended): an unfinished upstream body is aborted and logged. */
function onClientClose(this: AnyResponse): void {
  const st = (this as Tagged)[kStreaming]!;
  if (st.done) return;
  st.result.abort();
  st.finish();
}
