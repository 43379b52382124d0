// A minimal DNS client (RFC 1035 wire format) for service discovery: A, AAAA and SRV queries with their TTLs,
// which node:dns does not give for SRV. UDP with EDNS0 (4096-byte answers), TCP when the answer is
// truncated. Every exchange is bounded by a timeout; answers are bounded in size; names are read with a
// bounded number of compression jumps.
import dgram from 'node:dgram';
import { randomInt } from 'node:crypto';
import net from 'node:net';
import { splitHostPort } from '../upstream/endpoints.ts';

export type QueryType = 'A' | 'AAAA' | 'SRV';

const TYPE_CODES: Readonly<Record<QueryType, number>> = { A: 1, AAAA: 28, SRV: 33 };
const UDP_SIZE = 4096;
const MAX_JUMPS = 64;

export interface AddressRecord {
  readonly name: string;
  readonly address: string;
  readonly ttl: number;
}

export interface SrvRecord {
  readonly name: string;
  readonly priority: number;
  readonly weight: number;
  readonly port: number;
  readonly target: string;
  readonly ttl: number;
}

export interface DnsAnswer {
  /** 0 NOERROR, 3 NXDOMAIN, ... */
  readonly rcode: number;
  /** A and AAAA records of the answer section (a CNAME chain's final addresses included). */
  readonly addresses: AddressRecord[];
  readonly srv: SrvRecord[];
  /** A and AAAA records of the additional section (SRV targets). */
  readonly additional: AddressRecord[];
}

export interface DnsClientOptions {
  /** `ip`, `ip:port` or `[v6]:port`. */
  readonly servers: readonly string[];
  readonly timeoutMs?: number;
  readonly tries?: number;
}

interface Server {
  readonly host: string;
  readonly port: number;
}

export class DnsClient {
  private readonly servers: readonly Server[];
  private readonly timeoutMs: number;
  private readonly tries: number;

  constructor(opts: DnsClientOptions) {
    if (opts.servers.length === 0) throw new Error('dns: no servers');
    this.servers = opts.servers.map((s) => {
      const { host, port } = splitHostPort(s);
      if (net.isIP(host) === 0) throw new Error(`dns: server ${JSON.stringify(s)} is not an IP address`);
      return { host, port: port ?? 53 };
    });
    this.timeoutMs = opts.timeoutMs ?? 2000;
    this.tries = Math.max(1, opts.tries ?? 2);
  }

  /** Queries the servers in order until one answers; rejects when none did. */
  async query(name: string, type: QueryType): Promise<DnsAnswer> {
    let lastErr: unknown = new Error('dns: no answer');
    for (let attempt = 0; attempt < this.tries; attempt++) {
      for (const server of this.servers) {
        try {
          const id = randomInt(0, 0x10000);
          const q = encodeQuery(id, name, TYPE_CODES[type]);
          let res = parseAnswer(await udpExchange(server, q, this.timeoutMs), id);
          if (res.truncated) res = parseAnswer(await tcpExchange(server, q, this.timeoutMs), id);
          return res.answer;
        } catch (err) {
          lastErr = err;
        }
      }
    }
    throw lastErr;
  }
}

function encodeName(name: string): Buffer {
  const parts: Buffer[] = [];
  for (const label of name.replace(/\.$/, '').split('.')) {
    if (label === '') continue;
    const b = Buffer.from(label, 'ascii');
    if (b.length > 63) throw new Error(`dns: label too long in ${name}`);
    parts.push(Buffer.from([b.length]), b);
  }
  parts.push(Buffer.from([0]));
  return Buffer.concat(parts);
}

/** A recursive query for `name` with an EDNS0 OPT record (exported for the wire-format fuzz tests). */
export function encodeQuery(id: number, name: string, qtype: number): Buffer {
  const header = Buffer.alloc(12);
  header.writeUInt16BE(id, 0);
  header.writeUInt16BE(0x0100, 2); // RD
  header.writeUInt16BE(1, 4);
  header.writeUInt16BE(1, 10); // one additional record: EDNS0 OPT
  const q = Buffer.alloc(4);
  q.writeUInt16BE(qtype, 0);
  q.writeUInt16BE(1, 2);
  const opt = Buffer.alloc(11);
  opt.writeUInt16BE(41, 1);
  opt.writeUInt16BE(UDP_SIZE, 3);
  return Buffer.concat([header, encodeName(name), q, opt]);
}

function udpExchange(server: Server, query: Buffer, timeoutMs: number): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const sock = dgram.createSocket(net.isIPv6(server.host) ? 'udp6' : 'udp4');
    let settled = false;
    const done = (err: Error | null, msg?: Buffer): void => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      sock.close();
      if (err) reject(err);
      else resolve(msg!);
    };
    const timer = setTimeout(() => done(new Error('dns: timeout')), timeoutMs);
    sock.on('error', (err) => done(err));
    sock.on('message', (msg, rinfo) => {
      if (rinfo.port === server.port && msg.length >= 2 && msg.readUInt16BE(0) === query.readUInt16BE(0)) done(null, msg);
    });
    sock.send(query, server.port, server.host, (err) => {
      if (err) done(err);
    });
  });
}

function tcpExchange(server: Server, query: Buffer, timeoutMs: number): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const sock = net.connect({ host: server.host, port: server.port });
    let buf = Buffer.alloc(0);
    let settled = false;
    const done = (err: Error | null, msg?: Buffer): void => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      sock.destroy();
      if (err) reject(err);
      else resolve(msg!);
    };
    const timer = setTimeout(() => done(new Error('dns: tcp timeout')), timeoutMs);
    sock.on('error', (err) => done(err));
    sock.on('connect', () => {
      const len = Buffer.alloc(2);
      len.writeUInt16BE(query.length, 0);
      sock.write(Buffer.concat([len, query]));
    });
    sock.on('data', (d: Buffer) => {
      buf = Buffer.concat([buf, d]);
      if (buf.length >= 2 && buf.length >= 2 + buf.readUInt16BE(0)) done(null, buf.subarray(2, 2 + buf.readUInt16BE(0)));
    });
    sock.on('end', () => done(new Error('dns: tcp answer cut short')));
  });
}

/** Reads a possibly compressed name at `off`; returns it and the offset after it in the original stream. */
function readName(msg: Buffer, off: number): { name: string; next: number } {
  const labels: string[] = [];
  let pos = off;
  let next = -1;
  for (let jumps = 0; ; ) {
    if (pos >= msg.length) throw new Error('dns: name out of bounds');
    const len = msg[pos]!;
    if (len === 0) {
      if (next < 0) next = pos + 1;
      break;
    }
    if ((len & 0xc0) === 0xc0) {
      if (pos + 1 >= msg.length || ++jumps > MAX_JUMPS) throw new Error('dns: bad compression pointer');
      if (next < 0) next = pos + 2;
      pos = ((len & 0x3f) << 8) | msg[pos + 1]!;
      continue;
    }
    if (pos + 1 + len > msg.length) throw new Error('dns: label out of bounds');
    // latin1 maps each byte to its own character: 'ascii' would drop the high bit and read 0xE1 as 'a'.
    labels.push(msg.toString('latin1', pos + 1, pos + 1 + len));
    pos += 1 + len;
  }
  return { name: labels.join('.').toLowerCase(), next };
}

function ipv6(b: Buffer): string {
  const parts: string[] = [];
  for (let i = 0; i < 16; i += 2) parts.push(b.readUInt16BE(i).toString(16));
  // net.SocketAddress normalises the textual form (zero compression).
  return new net.SocketAddress({ address: parts.join(':'), family: 'ipv6' }).address;
}

/** Parses a response to query `id`; throws an Error whose message starts with `dns:` on malformed input. */
export function parseAnswer(msg: Buffer, id: number): { truncated: boolean; answer: DnsAnswer } {
  if (msg.length < 12 || msg.readUInt16BE(0) !== id) throw new Error('dns: malformed answer');
  const flags = msg.readUInt16BE(2);
  const counts = [msg.readUInt16BE(4), msg.readUInt16BE(6), msg.readUInt16BE(8), msg.readUInt16BE(10)];
  const answer: DnsAnswer = { rcode: flags & 0x0f, addresses: [], srv: [], additional: [] };
  let off = 12;
  for (let i = 0; i < counts[0]!; i++) off = readName(msg, off).next + 4;
  for (let section = 1; section <= 3; section++) {
    for (let i = 0; i < counts[section]!; i++) {
      const { name, next } = readName(msg, off);
      if (next + 10 > msg.length) throw new Error('dns: record out of bounds');
      const type = msg.readUInt16BE(next);
      const ttl = msg.readUInt32BE(next + 4);
      const len = msg.readUInt16BE(next + 8);
      const rd = next + 10;
      if (rd + len > msg.length) throw new Error('dns: rdata out of bounds');
      const into = section === 1 ? answer.addresses : section === 3 ? answer.additional : null;
      if (type === 1 && len === 4 && into) into.push({ name, ttl, address: `${msg[rd]}.${msg[rd + 1]}.${msg[rd + 2]}.${msg[rd + 3]}` });
      else if (type === 28 && len === 16 && into) into.push({ name, ttl, address: ipv6(msg.subarray(rd, rd + 16)) });
      else if (type === 33 && section === 1 && len >= 7) {
        answer.srv.push({
          name,
          ttl,
          priority: msg.readUInt16BE(rd),
          weight: msg.readUInt16BE(rd + 2),
          port: msg.readUInt16BE(rd + 4),
          target: readName(msg, rd + 6).name,
        });
      }
      off = rd + len;
    }
  }
  return { truncated: (flags & 0x0200) !== 0, answer };
}
