// A real Dubbo 2 provider for tests, written directly on hessian.js and node:net (it shares no code with
// protocols/dubbo, so it checks the gateway's codec independently). It answers heartbeats, runs registered
// methods (sync or async), answers an unknown method with a Java exception and an unknown service with
// status 60 (SERVICE_NOT_FOUND), and can be killed with calls in flight.
import net from 'node:net';
import hessian from 'hessian.js';

export type Method = (args: unknown[], attachments: Record<string, unknown>) => unknown;

export interface DubboProvider {
  readonly port: number;
  /** Calls received per "service#method". */
  readonly calls: Map<string, number>;
  heartbeats: number;
  /**
   * Every call received: each argument's hessian2 wire kind (from its first byte: int, long, double, string,
   * bool, null, map, list, object) and its value decoded with types ({$class, $} for typed maps, objects
   * and arrays).
   */
  readonly received: { service: string; method: string; desc: string; kinds: string[]; typed: unknown[] }[];
  readonly sockets: Set<net.Socket>;
  /** Stops listening and destroys every connection (calls in flight never get an answer). */
  kill(): Promise<void>;
}

function frame(flags: number, status: number, id: Buffer, body: Buffer): Buffer {
  const h = Buffer.alloc(16);
  h.writeUInt16BE(0xdabb, 0);
  h[2] = flags;
  h[3] = status;
  id.copy(h, 4);
  h.writeUInt32BE(body.length, 12);
  return Buffer.concat([h, body]);
}

function hs(...values: unknown[]): Buffer {
  const e = new hessian.EncoderV2();
  for (const v of values) e.write(v);
  return e.get();
}

function recordCall(received: DubboProvider['received'], body: Buffer, service: string, method: string, desc: string, argc: number): void {
  const td = new hessian.DecoderV2(body) as InstanceType<typeof hessian.DecoderV2> & { byteBuffer: { position(): number } };
  for (let i = 0; i < 5; i++) td.read();
  const kinds: string[] = [];
  const typed: unknown[] = [];
  for (let i = 0; i < argc; i++) {
    kinds.push(wireKind(body[td.byteBuffer.position()]!));
    typed.push(td.read(true));
  }
  received.push({ service, method, desc, kinds, typed });
}

/** The kind of a hessian2 value from its leading byte (Hessian 2.0 serialization grammar). */
export function wireKind(b: number): string {
  if ((b >= 0x80 && b <= 0xd7) || b === 0x49) return 'int';
  if (b >= 0xd8 || (b >= 0x38 && b <= 0x3f) || b === 0x4c || b === 0x59) return 'long';
  if ((b >= 0x5b && b <= 0x5f) || b === 0x44) return 'double';
  if (b <= 0x1f || (b >= 0x30 && b <= 0x33) || b === 0x52 || b === 0x53) return 'string';
  if (b === 0x54 || b === 0x46) return 'bool';
  if (b === 0x4e) return 'null';
  if (b === 0x48 || b === 0x4d) return 'map';
  if ((b >= 0x55 && b <= 0x58) || (b >= 0x70 && b <= 0x7f)) return 'list';
  if (b === 0x43 || b === 0x4f || (b >= 0x60 && b <= 0x6f)) return 'object';
  return `0x${b.toString(16)}`;
}

/**
 * `port` 0 picks a free one; a given port brings a killed provider back on its address. `record` false keeps
 * `received` empty (the bench provider: no second decode per call, no growing list).
 */
export async function startDubboProvider(services: Record<string, Record<string, Method>>, name = 'provider', port = 0, record = true): Promise<DubboProvider> {
  const calls = new Map<string, number>();
  const sockets = new Set<net.Socket>();
  const received: DubboProvider['received'] = [];
  const p = { calls, heartbeats: 0, sockets, received } as DubboProvider & { heartbeats: number };
  const answer = async (s: net.Socket, id: Buffer, twoWay: boolean, body: Buffer): Promise<void> => {
    const d = new hessian.DecoderV2(body);
    const [, path, , method, desc] = [d.read(), d.read(), d.read(), d.read(), d.read()] as string[];
    const argc = (desc!.match(/\[*(L[^;]+;|[ZBCSIJFD])/g) ?? []).length;
    const args = Array.from({ length: argc }, () => d.read());
    const att = (d.read() ?? {}) as Record<string, unknown>;
    if (record) recordCall(received, body, path!, method!, desc!, argc);
    calls.set(`${path}#${method}`, (calls.get(`${path}#${method}`) ?? 0) + 1);
    const svc = services[path!];
    let out: Buffer;
    if (svc === undefined) out = frame(0x02, 60, id, hs(`service ${path} not found on ${name}`));
    else if (svc[method!] === undefined) {
      const ex = { $class: 'java.lang.NoSuchMethodException', $: { detailMessage: `no method ${method} on ${name}`, stackTrace: [], suppressedExceptions: [] } };
      out = frame(0x02, 20, id, hs(3, ex, { $class: 'java.util.HashMap', $: { dubbo: '2.0.2' } }));
    } else {
      try {
        const v = await svc[method!]!(args, att);
        out = frame(0x02, 20, id, v === null || v === undefined ? hs(5, { dubbo: '2.0.2' }) : hs(4, v, { dubbo: '2.0.2', provider: name }));
      } catch (err) {
        const ex = { $class: 'java.lang.IllegalStateException', $: { detailMessage: (err as Error).message, stackTrace: [], suppressedExceptions: [] } };
        out = frame(0x02, 20, id, hs(3, ex, { dubbo: '2.0.2' }));
      }
    }
    if (twoWay && !s.destroyed) s.write(out);
  };
  const server = net.createServer((s) => {
    sockets.add(s);
    s.on('close', () => sockets.delete(s));
    s.on('error', () => s.destroy());
    let buf = Buffer.alloc(0);
    s.on('data', (chunk) => {
      buf = Buffer.concat([buf, chunk]);
      while (buf.length >= 16) {
        if (buf.readUInt16BE(0) !== 0xdabb) return void s.destroy();
        const len = buf.readUInt32BE(12);
        if (buf.length < 16 + len) return;
        const [flags, id, body] = [buf[2]!, Buffer.from(buf.subarray(4, 12)), Buffer.from(buf.subarray(16, 16 + len))];
        buf = buf.subarray(16 + len);
        if ((flags & 0x80) === 0) continue;
        if (flags & 0x20) {
          p.heartbeats++;
          if (flags & 0x40) s.write(frame(0x22, 20, id, hs(null)));
          continue;
        }
        void answer(s, id, (flags & 0x40) !== 0, body).catch(() => s.destroy());
      }
    });
  });
  await new Promise<void>((resolve, reject) => server.once('error', reject).listen(port, '127.0.0.1', () => resolve()));
  return Object.assign(p, {
    port: (server.address() as net.AddressInfo).port,
    kill: async () => {
      for (const s of sockets) s.destroy();
      await new Promise<void>((r) => server.close(() => r()));
    },
  });
}

export interface RawReply {
  flags: number;
  status: number;
  id: bigint;
  /** Decoded body values: [type, value, attachments] for OK responses, [message] otherwise. */
  values: unknown[];
}

/** A raw Dubbo consumer connection built on hessian.js only (independent of protocols/dubbo). */
export interface DubboTestClient {
  readonly socket: net.Socket;
  /** Encodes a two-way hessian2 request frame (one-way when twoWay is false). */
  frame(id: bigint, service: string, method: string, args: unknown[], opts?: { version?: string; twoWay?: boolean; desc?: string }): Buffer;
  call(id: bigint, service: string, method: string, args?: unknown[], opts?: { version?: string }): Promise<RawReply>;
  /** Replies received so far, by request id. */
  readonly replies: Map<bigint, RawReply>;
  waitReply(id: bigint, timeoutMs?: number): Promise<RawReply>;
  /** Resolves when the gateway closes the connection. */
  readonly closed: Promise<void>;
}

export async function connectDubboClient(port: number): Promise<DubboTestClient> {
  const socket = net.connect({ host: '127.0.0.1', port });
  await new Promise<void>((resolve, reject) => socket.once('connect', resolve).once('error', reject));
  socket.on('error', () => undefined);
  const replies = new Map<bigint, RawReply>();
  const waiters = new Map<bigint, (r: RawReply) => void>();
  let buf = Buffer.alloc(0);
  socket.on('data', (chunk) => {
    buf = Buffer.concat([buf, chunk]);
    while (buf.length >= 16 && buf.length >= 16 + buf.readUInt32BE(12)) {
      const len = buf.readUInt32BE(12);
      const d = new hessian.DecoderV2(buf.subarray(16, 16 + len));
      const values: unknown[] = [];
      try {
        for (let i = 0; i < 3; i++) values.push(d.read());
      } catch {
        // Fewer than three values in the body.
      }
      const r: RawReply = { flags: buf[2]!, status: buf[3]!, id: buf.readBigUInt64BE(4), values };
      buf = buf.subarray(16 + len);
      replies.set(r.id, r);
      waiters.get(r.id)?.(r);
      waiters.delete(r.id);
    }
  });
  const closed = new Promise<void>((resolve) => socket.once('close', () => resolve()));
  const frameOf: DubboTestClient['frame'] = (id, service, method, args, opts = {}) => {
    const desc = opts.desc ?? 'Ljava/lang/Object;'.repeat(args.length);
    const body = hs('2.0.2', service, opts.version ?? '', method, desc, ...args, { $class: 'java.util.HashMap', $: { path: service, interface: service } });
    const idBuf = Buffer.alloc(8);
    idBuf.writeBigUInt64BE(id);
    return frame(0x80 | (opts.twoWay === false ? 0 : 0x40) | 0x02, 0, idBuf, body);
  };
  const waitReply = (id: bigint, timeoutMs = 5_000): Promise<RawReply> => {
    const have = replies.get(id);
    if (have) return Promise.resolve(have);
    return new Promise<RawReply>((resolve, reject) => {
      const t = setTimeout(() => reject(new Error(`no reply for ${id}`)), timeoutMs);
      waiters.set(id, (r) => (clearTimeout(t), resolve(r)));
    });
  };
  return {
    socket,
    replies,
    closed,
    frame: frameOf,
    waitReply,
    call(id, service, method, args = [], opts = {}) {
      socket.write(frameOf(id, service, method, args, opts));
      return waitReply(id);
    },
  };
}
