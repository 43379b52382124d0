// A Dubbo 2 provider with fastjson serialization (id 6), as Dubbo providers configured with
// `serialization="fastjson"` answer (APISIX's http-dubbo test backend): every value is one line of JSON.
// Written on node:net only, independent of the gateway's code. Answers heartbeats, runs registered methods,
// answers an unknown service with status 70 (SERVICE_ERROR) and a throwing method with an exception.
import net from 'node:net';

export type FastjsonMethod = (args: unknown[]) => unknown;

export interface FastjsonProvider {
  readonly port: number;
  /** Requests received, decoded: service, version, method, descriptor, args. */
  readonly requests: { service: string; version: string; method: string; desc: string; args: unknown[]; raw: string }[];
  kill(): Promise<void>;
}

function frame(flags: number, status: number, id: Buffer, body: string): Buffer {
  const b = Buffer.from(body);
  const h = Buffer.alloc(16);
  h.writeUInt16BE(0xdabb, 0);
  h[2] = flags;
  h[3] = status;
  id.copy(h, 4);
  h.writeUInt32BE(b.length, 12);
  return Buffer.concat([h, b]);
}

function countParams(desc: string): number {
  return (desc.match(/\[*(L[^;]+;|[ZBCSIJFD])/g) ?? []).length;
}

export async function startFastjsonProvider(services: Record<string, Record<string, FastjsonMethod>>): Promise<FastjsonProvider> {
  const requests: FastjsonProvider['requests'] = [];
  const sockets = new Set<net.Socket>();
  const answer = async (s: net.Socket, id: Buffer, body: string): Promise<void> => {
    const lines = body.split('\n');
    const [, service, version, method, desc] = lines.slice(0, 5).map((l) => JSON.parse(l) as string);
    const n = countParams(desc!);
    const args = lines.slice(5, 5 + n).map((l) => JSON.parse(l) as unknown);
    requests.push({ service: service!, version: version!, method: method!, desc: desc!, args, raw: body });
    const svc = services[`${service}:${version}`];
    let out: Buffer;
    if (svc === undefined) out = frame(0x06, 70, id, `${JSON.stringify(`Not found exported service: ${service}:${version}`)}\n`);
    else if (svc[method!] === undefined) {
      out = frame(0x06, 20, id, `3\n${JSON.stringify({ message: `No such method ${method}` })}\n{}\n`);
    } else {
      try {
        const v = await svc[method!]!(args);
        out = frame(0x06, 20, id, v === undefined || v === null ? '5\n{"dubbo":"2.0.2"}\n' : `4\n${JSON.stringify(v)}\n{"dubbo":"2.0.2"}\n`);
      } catch (err) {
        out = frame(0x06, 20, id, `3\n${JSON.stringify({ message: (err as Error).message, '@type': 'java.lang.RuntimeException' })}\n{}\n`);
      }
    }
    if (!s.destroyed) s.write(out);
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
        const flags = buf[2]!;
        const id = Buffer.from(buf.subarray(4, 12));
        const body = buf.subarray(16, 16 + len).toString('utf8');
        buf = buf.subarray(16 + len);
        if ((flags & 0x80) === 0) continue;
        if (flags & 0x20) {
          // Heartbeat: answered in the request's own serialization.
          if (flags & 0x40) s.write(Buffer.concat([frame(0x20 | (flags & 0x1f), 20, id, '')]));
          continue;
        }
        if ((flags & 0x1f) !== 6) return void s.destroy();
        void answer(s, id, body).catch(() => s.destroy());
      }
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
  return {
    port: (server.address() as net.AddressInfo).port,
    requests,
    kill: async () => {
      for (const s of sockets) s.destroy();
      await new Promise<void>((r) => server.close(() => r()));
    },
  };
}
