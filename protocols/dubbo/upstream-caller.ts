// The Dubbo caller HTTP-to-Dubbo plugins reach through src/plugin/terminals.ts: one multiplexed DubboPool per
// provider endpoint and pool settings, shared by every route and snapshot of the process. Pools whose
// connections all closed (idle eviction, provider gone) and that carry no call are dropped by a sweep.
import type {
  DubboCaller,
  DubboInvocation,
  DubboRawReply,
  DubboRawRequest,
  DubboReply,
  RpcEndpoint,
  RpcPoolSettings,
} from '../../src/plugin/terminals.ts';
import { FLAG_REQUEST, FLAG_TWO_WAY, SERIALIZATION_MASK } from './codec.ts';
import type { RawReply, ReplyHandler } from './connection.ts';
import { callDubbo, DubboPool, POOL_DEFAULTS } from './pool.ts';

type Resolve = (r: DubboRawReply) => void;

const RAW_HANDLER: ReplyHandler<Resolve> = {
  onReply(reply: RawReply, resolve: Resolve): void {
    if (reply.ok) resolve({ ok: true, status: reply.frame.status, body: reply.frame.body });
    else resolve({ ok: false, kind: 'transport', code: reply.error.code, message: reply.error.message });
  },
};

const SWEEP_MS = 30_000;

export class DubboUpstreamCaller implements DubboCaller {
  private readonly pools = new Map<string, DubboPool>();
  private sweeper: NodeJS.Timeout | null = null;

  invoke(endpoint: RpcEndpoint, call: DubboInvocation): Promise<DubboReply> {
    return callDubbo(this.poolFor(endpoint, call), call);
  }

  exchange(endpoint: RpcEndpoint, request: DubboRawRequest): Promise<DubboRawReply> {
    const pool = this.poolFor(endpoint, request);
    const flags = FLAG_REQUEST | FLAG_TWO_WAY | (request.serialization & SERIALIZATION_MASK);
    return new Promise<DubboRawReply>((resolve) => pool.send(flags, request.body, request.timeoutMs, RAW_HANDLER, resolve));
  }

  /** Closes every pool (calls in flight fail with 'closed'). */
  close(): void {
    if (this.sweeper !== null) clearInterval(this.sweeper);
    this.sweeper = null;
    for (const p of this.pools.values()) p.close();
    this.pools.clear();
  }

  private poolFor(endpoint: RpcEndpoint, s: RpcPoolSettings): DubboPool {
    // hot path
    const multiplex = s.multiplex ?? POOL_DEFAULTS.multiplex;
    const key = `${endpoint.key}#${s.connectTimeoutMs}#${multiplex}`;
    let pool = this.pools.get(key);
    if (pool === undefined) {
      pool = new DubboPool({ host: endpoint.host, port: endpoint.port, connectTimeoutMs: s.connectTimeoutMs, multiplex });
      this.pools.set(key, pool);
      if (this.sweeper === null) {
        this.sweeper = setInterval(() => this.sweep(), SWEEP_MS);
        this.sweeper.unref();
      }
    }
    return pool;
  }

  private sweep(): void {
    for (const [key, pool] of this.pools) {
      if (pool.connections === 0 && pool.inFlight === 0) {
        pool.close();
        this.pools.delete(key);
      }
    }
  }
}

/** The process-wide caller registered by setup(). */
export const dubboUpstreamCaller = new DubboUpstreamCaller();
