// Node-wide local counters. A single process (worker_processes 1) counts in its own memory. In a cluster the
// primary is the one authority of the node: workers send their counting operations to it over the cluster IPC
// channel and wait for its answer, so a limit of 10 lets exactly 10 requests through whatever the number of
// workers (APISIX's local counters live in an nginx shared dict, node-wide, too).
// Cost: one IPC round trip per request. Operations issued by a worker within one event-loop turn travel in one
// message (flushed from setImmediate), so the per-request cost falls under load; bench/micro/counters.ts
// measures it. A primary that does not answer within FALLBACK_MS (not attached, overloaded) makes the worker
// count on its own (per worker: more lenient, never stuck) for that batch and for the next LOCAL_MS, unless a
// late answer shows the primary is back; it is logged once.
// Slots held by a worker that dies are released by the primary.
import cluster, { type Worker } from 'node:cluster';
import { getLogger } from '../../observability/logger.ts';
import {
  REJECTED,
  type ConnStore,
  type CostCounterStore,
  type CostResult,
  type CounterResult,
  type CounterStore,
  type LeakyBucketStore,
  type SeenStore,
  type WindowType,
} from './counter.ts';
import { LocalConnCounts, LocalLeakyBuckets } from './leaky.ts';
import { localCounters } from './local.ts';
import { localSeen } from './seen.ts';

export interface NodeCounters extends CounterStore, CostCounterStore, LeakyBucketStore, ConnStore, SeenStore {}

const REQUEST = 'swy-counters';
const REPLY = 'swy-counters-reply';
const FALLBACK_MS = 1000;
const LOCAL_MS = 10_000;

/** Operation codes on the wire. */
const OP_COUNT = 0;
const OP_LEAK = 1;
const OP_CONN_IN = 2;
const OP_CONN_OUT = 3;
const OP_COST = 4;
const OP_SEEN = 5;

type WireOp =
  | [typeof OP_COUNT, string, number, number, number]
  | [typeof OP_LEAK, string, number, number]
  | [typeof OP_CONN_IN, string, number, string]
  | [typeof OP_CONN_OUT, string, string]
  | [typeof OP_COST, string, number, number]
  | [typeof OP_SEEN, string, number];

interface RequestMessage {
  type: typeof REQUEST;
  id: number;
  ops: WireOp[];
}

interface ReplyMessage {
  type: typeof REPLY;
  id: number;
  res: (number | number[] | null)[];
}

/** The in-memory stores of this process. */
class LocalNode implements NodeCounters {
  readonly buckets = new LocalLeakyBuckets();
  readonly conns = new LocalConnCounts();

  incr(key: string, windowMs: number, limit: number, type: WindowType): CounterResult {
    return localCounters.incr(key, windowMs, limit, type);
  }

  incrBy(key: string, windowMs: number, cost: number): CostResult {
    return localCounters.incrBy(key, windowMs, cost);
  }

  leak(key: string, rate: number, burst: number): number {
    return this.buckets.leak(key, rate, burst);
  }

  connIn(key: string, limit: number): number {
    return this.conns.connIn(key, limit);
  }

  connOut(key: string): void {
    this.conns.connOut(key);
  }

  remember(key: string, ttlMs: number): number {
    return localSeen.remember(key, ttlMs);
  }
}

const local = new LocalNode();

interface Batch {
  readonly id: number;
  readonly ops: WireOp[];
  readonly done: ((v: number | number[] | null) => void)[];
  sentAt: number;
}

/** A worker's view: every operation goes to the primary. */
class WorkerNode implements NodeCounters {
  #nextId = 1;
  #open: Batch | null = null;
  readonly #inflight = new Map<number, Batch>();
  #listening = false;
  #watchdog: NodeJS.Timeout | null = null;
  #warned = false;
  /** Until then (epoch ms) the worker counts on its own without asking the primary. */
  #localUntil = 0;
  /** Slots taken while the primary did not answer, released here rather than by the primary. */
  readonly #localHeld = new Map<string, string>();
  readonly #flush = (): void => this.#send();
  readonly #onMessage = (m: unknown): void => this.#reply(m);

  incr(key: string, windowMs: number, limit: number, type: WindowType): Promise<CounterResult> {
    return new Promise((resolve) => {
      this.#push([OP_COUNT, key, windowMs, limit, type === 'sliding' ? 1 : 0], (v) => {
        const r = v as number[];
        resolve({ count: r[0]!, resetMs: r[1]!, allowed: r[2] === 1 });
      });
    });
  }

  incrBy(key: string, windowMs: number, cost: number): Promise<CostResult> {
    return new Promise((resolve) => {
      this.#push([OP_COST, key, windowMs, cost], (v) => {
        const r = v as number[];
        resolve({ count: r[0]!, resetMs: r[1]! });
      });
    });
  }

  leak(key: string, rate: number, burst: number): Promise<number> {
    return new Promise((resolve) => this.#push([OP_LEAK, key, rate, burst], (v) => resolve(v as number)));
  }

  connIn(key: string, limit: number, id: string): Promise<number> {
    return new Promise((resolve) => this.#push([OP_CONN_IN, key, limit, id], (v) => resolve(v as number)));
  }

  remember(key: string, ttlMs: number): Promise<number> {
    return new Promise((resolve) => this.#push([OP_SEEN, key, ttlMs], (v) => resolve(v as number)));
  }

  connOut(key: string, id: string): void {
    if (this.#localHeld.delete(id)) return local.connOut(key);
    this.#push([OP_CONN_OUT, key, id], noop);
  }

  // hot path
  #push(op: WireOp, done: (v: number | number[] | null) => void): void {
    let b = this.#open;
    if (b === null) {
      b = this.#open = { id: this.#nextId++, ops: [], done: [], sentAt: 0 };
      setImmediate(this.#flush);
    }
    b.ops.push(op);
    b.done.push(done);
  }

  #send(): void {
    const b = this.#open;
    this.#open = null;
    if (b === null) return;
    if (!this.#listening) {
      this.#listening = true;
      process.on('message', this.#onMessage);
    }
    if (!process.connected || process.send === undefined) return this.#fallback(b, 'no IPC channel');
    if (this.#localUntil !== 0) {
      if (Date.now() < this.#localUntil) return this.#fallback(b, 'no answer from the cluster primary');
      this.#localUntil = 0;
    }
    b.sentAt = Date.now();
    this.#inflight.set(b.id, b);
    process.send({ type: REQUEST, id: b.id, ops: b.ops } satisfies RequestMessage);
    if (this.#watchdog === null) {
      this.#watchdog = setInterval(() => this.#expire(), FALLBACK_MS / 4);
      this.#watchdog.unref();
    }
  }

  #reply(raw: unknown): void {
    const m = raw as ReplyMessage | null;
    if (m === null || typeof m !== 'object' || m.type !== REPLY) return;
    const b = this.#inflight.get(m.id);
    this.#localUntil = 0;
    if (b === undefined) return;
    this.#inflight.delete(m.id);
    for (let i = 0; i < b.done.length; i++) b.done[i]!(m.res[i] ?? null);
    this.#idle();
  }

  #expire(): void {
    const limit = Date.now() - FALLBACK_MS;
    for (const b of this.#inflight.values()) {
      if (b.sentAt > limit) continue;
      this.#inflight.delete(b.id);
      this.#localUntil = Date.now() + LOCAL_MS;
      this.#fallback(b, 'no answer from the cluster primary');
    }
    this.#idle();
  }

  #idle(): void {
    if (this.#inflight.size === 0 && this.#watchdog !== null) {
      clearInterval(this.#watchdog);
      this.#watchdog = null;
    }
  }

  #fallback(b: Batch, reason: string): void {
    if (!this.#warned) {
      this.#warned = true;
      getLogger('gateway').child({ module: 'counters' }).warn({ reason }, 'node-wide counters unavailable; counting in this worker');
    }
    for (let i = 0; i < b.ops.length; i++) b.done[i]!(apply(local, b.ops[i]!, this.#localHeld));
  }
}

function noop(): void {}

/** Runs one wire operation on `node`; `held` tracks the slots of the sending worker. */
function apply(node: LocalNode, op: WireOp, held: Map<string, string> | null): number | number[] | null {
  switch (op[0]) {
    case OP_COUNT: {
      const r = node.incr(op[1], op[2], op[3], op[4] === 1 ? 'sliding' : 'fixed');
      return [r.count, r.resetMs, r.allowed ? 1 : 0];
    }
    case OP_COST: {
      const r = node.incrBy(op[1], op[2], op[3]);
      return [r.count, r.resetMs];
    }
    case OP_LEAK:
      return node.leak(op[1], op[2], op[3]);
    case OP_SEEN:
      return node.remember(op[1], op[2]);
    case OP_CONN_IN: {
      const n = node.connIn(op[1], op[2]);
      if (n !== REJECTED) held?.set(op[3], op[1]);
      return n;
    }
    case OP_CONN_OUT:
      if (held === null || held.delete(op[2])) node.connOut(op[1]);
      return null;
    default:
      return null;
  }
}

/**
 * Primary side: answers the workers' counting operations from the primary's memory and releases the slots of
 * workers that exit. Returns a detach function.
 */
export function attachCounterPrimary(): () => void {
  const held = new Map<number, Map<string, string>>();
  const onMessage = (worker: Worker, raw: unknown): void => {
    const m = raw as RequestMessage | null;
    if (m === null || typeof m !== 'object' || m.type !== REQUEST || !Array.isArray(m.ops)) return;
    let mine = held.get(worker.id);
    if (mine === undefined) held.set(worker.id, (mine = new Map()));
    const res: (number | number[] | null)[] = new Array(m.ops.length);
    for (let i = 0; i < m.ops.length; i++) res[i] = apply(local, m.ops[i]!, mine);
    if (worker.isConnected()) worker.send({ type: REPLY, id: m.id, res } satisfies ReplyMessage);
  };
  const onExit = (worker: Worker): void => {
    const mine = held.get(worker.id);
    held.delete(worker.id);
    if (mine !== undefined) for (const key of mine.values()) local.connOut(key);
  };
  cluster.on('message', onMessage);
  cluster.on('exit', onExit);
  return () => {
    cluster.off('message', onMessage);
    cluster.off('exit', onExit);
  };
}

/** The node-wide counters of this process: the primary's through IPC in a cluster worker, else in memory. */
export const nodeCounters: NodeCounters = cluster.isWorker ? new WorkerNode() : local;
