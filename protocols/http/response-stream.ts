// Streaming a proxied response to the client: upstream body (through body_filter plugins when the chains
// have any) piped with backpressure, trailers after the body, bytes counted for the access log, and exactly
// one log phase whether the body ends, the upstream aborts or the client goes away.
import type { ServerResponse } from 'node:http';
import { Transform, type Readable, type TransformCallback } from 'node:stream';
import type { PluginChain } from '../../src/plugin/chain.ts';
import { runBodyFilter } from '../../src/plugin/runner.ts';
import type { HttpRuntime } from '../../src/runtime/types.ts';
import type { DispatchResult } from '../../src/upstream/dispatch.ts';
import type { Logger } from '../../src/observability/logger.ts';
import type { RequestContext } from './context.ts';
import type { AnyResponse } from './respond.ts';

type Proxied = Extract<DispatchResult, { ok: true }>;

/** What the streaming side needs from the handler. */
export interface ResponseLogger {
  readonly opts: { readonly logger: Logger };
  log(ctx: RequestContext, rt: Pick<HttpRuntime, 'global'>, chain: PluginChain | null, bytes: number): void;
}

/** Pipes `result.body` into `res` (whose head is already written). */
export function streamResponse(
  handler: ResponseLogger,
  ctx: RequestContext,
  rt: HttpRuntime,
  chain: PluginChain,
  result: Proxied,
  res: AnyResponse,
  filtering: boolean,
): void {
  const upstreamBody = result.body;
  const src: Readable = filtering ? upstreamBody.pipe(new BodyFilterStream(rt.global, chain, ctx)) : upstreamBody;
  // The listeners are module-level functions that find this state on the emitter (no per-request closures).
  const st = new Streaming(handler, ctx, rt, chain, result, res);
  (src as Tagged)[kStreaming] = st;
  (res as Tagged)[kStreaming] = st;
  // pipe() gives backpressure both ways; the end is handled here so trailers can go out first.
  src.pipe(res as ServerResponse, { end: false });
  src.on('data', countBytes);
  src.once('end', onBodyEnd);
  src.once('error', onBodyError);
  if (filtering) {
    // pipe() does not forward errors: an aborted upstream body must end the response too.
    (upstreamBody as Tagged)[kStreaming] = st;
    upstreamBody.once('error', onBodyError);
  }
  res.once('close', onClientClose);
}

const kStreaming = Symbol('switchyard.streaming');
type Tagged = { [kStreaming]?: Streaming };

/** One proxied response being streamed to the client: counts the bytes and logs exactly once. */
class Streaming {
  bytes = 0;
  done = false;
  readonly handler: ResponseLogger;
  readonly ctx: RequestContext;
  readonly rt: HttpRuntime;
  readonly chain: PluginChain;
  readonly result: Proxied;
  readonly res: AnyResponse;

  constructor(
    handler: ResponseLogger,
    ctx: RequestContext,
    rt: HttpRuntime,
    chain: PluginChain,
    result: Proxied,
    res: AnyResponse,
  ) {
    this.handler = handler;
    this.ctx = ctx;
    this.rt = rt;
    this.chain = chain;
    this.result = result;
    this.res = res;
  }

  finish(): void {
    if (this.done) return;
    this.done = true;
    this.handler.log(this.ctx, this.rt, this.chain, this.bytes);
  }
}

// hot path
function countBytes(this: Readable, chunk: Buffer): void {
  (this as Tagged)[kStreaming]!.bytes += chunk.length;
}

function onBodyEnd(this: Readable): void {
  const st = (this as Tagged)[kStreaming]!;
  const trailers = st.result.trailers();
  if (trailers !== null && Object.keys(trailers).length > 0) (st.res as ServerResponse).addTrailers(trailers);
  st.res.end();
  st.finish();
}

function onBodyError(this: Readable, err: Error): void {
  const st = (this as Tagged)[kStreaming]!;
  if (st.done) return;
  st.handler.opts.logger.warn({ err: err.message, route: st.ctx.routeId }, 'upstream body aborted');
  st.res.destroy();
  st.finish();
}

/** The client went away (or the response ended): an unfinished upstream body is aborted and logged. */
function onClientClose(this: AnyResponse): void {
  const st = (this as Tagged)[kStreaming]!;
  if (st.done) return;
  st.result.body.destroy();
  st.finish();
}

/** Streams the upstream body through body_filter plugins. */
class BodyFilterStream extends Transform {
  private readonly global: PluginChain | null;
  private readonly chain: PluginChain;
  private readonly ctx: RequestContext;
  constructor(global: PluginChain | null, chain: PluginChain, ctx: RequestContext) {
    super();
    this.global = global;
    this.chain = chain;
    this.ctx = ctx;
  }
  override _transform(chunk: Buffer, _enc: BufferEncoding, cb: TransformCallback): void {
    const out = runBodyFilter(this.global, this.chain, this.ctx, chunk, false);
    cb(null, out ?? undefined);
  }
  override _flush(cb: TransformCallback): void {
    const out = runBodyFilter(this.global, this.chain, this.ctx, Buffer.alloc(0), true);
    cb(null, out !== null && out.length > 0 ? out : undefined);
  }
}

