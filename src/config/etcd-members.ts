// Fail-over across the members of an etcd cluster. One etcd3 client per member (each with the client's own
// retries and breaker turned off), so no call is retried or re-routed behind this module's back. A call goes to
// the preferred member (sticky, like etcd's clientv3 pinning one endpoint) and fails over to the others in
// order; which failures may fail over depends on whether the call may have reached a server:
//  - 'unsent' (no connection to the member, stream refused, no leader): etcd never saw the request, so any call
//    may be sent again elsewhere;
//  - 'transport' (connection dropped mid-call, deadline, etcd timeout): the request may have been applied, so
//    only idempotent calls (reads, compare-and-swap) are sent again; a plain put or delete fails;
//  - 'final' (etcd answered: conflict, compaction, auth...): the member is healthy and the answer stands.
// Each member has a soft circuit breaker: after a failure it is tried last until its jittered cool-down ends,
// but never skipped outright, so an outage of every member still recovers at the first member that returns.
import { readFileSync } from 'node:fs';
import { isRecoverableError, type Etcd3, type IOptions } from 'etcd3';
import { backoffMs } from './store-common.ts';

export interface EtcdConnection {
  /** Per-call deadline for unary requests (range, put, txn...). */
  timeoutSec: number;
  user?: string;
  password?: string;
  /** cert/key/ca: file paths or inline PEM. */
  tls?: { cert?: string; key?: string; ca?: string; verify?: boolean; sni?: string };
}

type Policy = NonNullable<NonNullable<IOptions['faultHandling']>['global']>;

/** The client's own retry policy would send a put again after failures that do not prove it was never applied,
 * and its breaker would fail calls outright; both are this module's job. */
const passThrough = {
  onSuccess: () => ({ dispose: () => undefined }),
  onFailure: () => ({ dispose: () => undefined }),
  execute: <T>(fn: (ctx: { signal: AbortSignal }) => PromiseLike<T> | T, signal?: AbortSignal): Promise<T> =>
    Promise.resolve().then(() => fn({ signal: signal ?? new AbortController().signal })),
} as unknown as Policy;

function pem(v: string): Buffer {
  return v.includes('-----BEGIN') ? Buffer.from(v) : readFileSync(v);
}

/** etcd3 client options (hosts left to the caller: one client per member). */
export function etcdClientOptions(c: EtcdConnection): Omit<IOptions, 'hosts'> {
  const timeoutMs = Math.max(1, c.timeoutSec) * 1000;
  const tls = c.tls;
  const options: Omit<IOptions, 'hosts'> = {
    dialTimeout: timeoutMs,
    defaultCallOptions: (ctx) => (ctx.isStream ? {} : { deadline: Date.now() + timeoutMs }),
    faultHandling: { global: passThrough, host: () => passThrough },
    grpcOptions: {
      'grpc.initial_reconnect_backoff_ms': 500,
      'grpc.max_reconnect_backoff_ms': 4000,
      'grpc.keepalive_time_ms': 15_000,
      'grpc.keepalive_timeout_ms': 5000,
      'grpc.max_receive_message_length': 64 * 1024 * 1024,
      ...(tls?.sni ? { 'grpc.ssl_target_name_override': tls.sni } : {}),
    },
  };
  if (tls && (tls.ca || tls.cert || tls.key)) {
    options.credentials = {
      rootCertificate: tls.ca ? pem(tls.ca) : (undefined as unknown as Buffer),
      privateKey: tls.key ? pem(tls.key) : undefined,
      certChain: tls.cert ? pem(tls.cert) : undefined,
    };
  }
  if (c.user) options.auth = { username: c.user, password: c.password ?? '' };
  return options;
}

/** The first key after every key starting with `p` (etcd prefix range end). */
export function prefixEnd(p: Buffer): Buffer {
  const end = Buffer.from(p);
  for (let i = end.length - 1; i >= 0; i--) {
    if (end[i]! < 0xff) {
      end[i]! += 1;
      return end.subarray(0, i + 1);
    }
  }
  return Buffer.from([0]);
}

export type Failure = 'unsent' | 'transport' | 'final';

/** 'idempotent': safe to send again after a transport failure; 'once': only when it provably was never sent. */
export type CallKind = 'idempotent' | 'once';

// grpc-js: a pick on a channel without a connection ("No connection established. Last error: connect
// ECONNREFUSED"), or HTTP/2 REFUSED_STREAM; etcd: requests rejected before any proposal.
const UNSENT = /No connection established|Stream refused by server|etcdserver: no leader|etcdserver: too many requests/;

export function classifyEtcdError(err: unknown): Failure {
  if (!(err instanceof Error)) return 'final';
  if (UNSENT.test(err.message)) return 'unsent';
  return isRecoverableError(err) ? 'transport' : 'final';
}

export interface EtcdMember {
  readonly host: string;
  readonly client: Etcd3;
}

interface MemberState extends EtcdMember {
  /** Consecutive failures; 0 = circuit closed. */
  failures: number;
  /** Until when (ms since epoch) the member is tried only after the others. */
  coolUntil: number;
}

export interface EtcdMembersOptions {
  /** First cool-down after a failure; doubles per consecutive failure up to coolCapMs (jittered +/-25%). */
  coolBaseMs?: number;
  coolCapMs?: number;
}

export class EtcdMembers {
  private readonly members: MemberState[];
  private preferred: MemberState | null = null;
  private readonly coolBaseMs: number;
  private readonly coolCapMs: number;

  constructor(hosts: readonly string[], makeClient: (host: string) => Etcd3, opts: EtcdMembersOptions = {}) {
    if (hosts.length === 0) throw new Error('etcd: no hosts configured');
    this.members = hosts.map((host) => ({ host, client: makeClient(host), failures: 0, coolUntil: 0 }));
    this.coolBaseMs = opts.coolBaseMs ?? 1000;
    this.coolCapMs = opts.coolCapMs ?? 15_000;
  }

  get hosts(): string[] {
    return this.members.map((m) => m.host);
  }

  /**
   * Members in the order to try them: the preferred one when its circuit is closed, then the other closed
   * ones in random order (spreading gateways over the cluster), then cooling ones, soonest back first.
   * `last` (e.g. the member a watch just lost) goes to the end.
   */
  order(last?: EtcdMember): EtcdMember[] {
    const now = Date.now();
    const ready: MemberState[] = [];
    const cooling: MemberState[] = [];
    for (const m of this.members) (m.coolUntil <= now ? ready : cooling).push(m);
    for (let i = ready.length - 1; i > 0; i--) {
      const j = Math.floor(Math.random() * (i + 1));
      [ready[i], ready[j]] = [ready[j]!, ready[i]!];
    }
    const p = this.preferred;
    if (p && p.coolUntil <= now) {
      ready.splice(ready.indexOf(p), 1);
      ready.unshift(p);
    }
    cooling.sort((a, b) => a.coolUntil - b.coolUntil);
    const out: EtcdMember[] = [...ready, ...cooling];
    if (last) {
      const i = out.indexOf(last);
      if (i >= 0 && out.length > 1) out.push(...out.splice(i, 1));
    }
    return out;
  }

  /** The member answered (any etcd answer, including a refusal): close its circuit and prefer it. */
  succeeded(member: EtcdMember): void {
    const m = member as MemberState;
    m.failures = 0;
    m.coolUntil = 0;
    this.preferred = m;
  }

  /** The member could not be reached or did not answer: cool it down and stop preferring it. */
  failed(member: EtcdMember): void {
    const m = member as MemberState;
    m.coolUntil = Date.now() + backoffMs(m.failures, this.coolBaseMs, this.coolCapMs);
    m.failures++;
    if (this.preferred === m) this.preferred = null;
  }

  /**
   * Runs `fn` on one member after another until one answers. `maybeSent` tells `fn` that an earlier attempt
   * failed after the request may have reached etcd (only possible for 'idempotent' calls), e.g. to recognise
   * its own compare-and-swap that was applied although the answer was lost.
   */
  async call<T>(kind: CallKind, fn: (client: Etcd3, maybeSent: boolean) => Promise<T>): Promise<T> {
    let lastErr: unknown;
    let maybeSent = false;
    for (const member of this.order()) {
      try {
        const out = await fn(member.client, maybeSent);
        this.succeeded(member);
        return out;
      } catch (err) {
        const failure = classifyEtcdError(err);
        if (failure === 'final') {
          this.succeeded(member);
          throw err;
        }
        this.failed(member);
        lastErr = err;
        if (failure === 'transport') {
          if (kind === 'once') throw err;
          maybeSent = true;
        }
      }
    }
    throw lastErr;
  }

  close(): void {
    for (const m of this.members) m.client.close();
  }
}
