// A real @grpc/grpc-js upstream (the swytest.Echo service of test/grpc/fixtures/echo.proto: unary, server,
// client and bidi streaming, failures with chosen statuses, delays), grpc-js clients, a throwaway test CA made
// with openssl, and the gRPC-Web wire format (5-byte frames, trailer frame flag 0x80) for hand-built clients.
import { execFile } from 'node:child_process';
import { readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { promisify } from 'node:util';
import * as grpc from '@grpc/grpc-js';
import * as protoLoader from '@grpc/proto-loader';
import protobuf from 'protobufjs';
import { tempDir } from './proc.ts';

const run = promisify(execFile);

export const ECHO_PROTO = path.join(import.meta.dirname, '../grpc/fixtures/echo.proto');

export interface EchoRequest {
  text?: string;
  fail_code?: number;
  fail_message?: string;
  delay_ms?: number;
  echo_headers?: string[];
}
export interface StreamRequest {
  text?: string;
  count?: number;
  interval_ms?: number;
  fail_code?: number;
  pad_bytes?: number;
}
export interface EchoReply {
  text: string;
  seq: number;
  headers: Record<string, string>;
  sent_at: number;
  pad: Buffer;
}

const definition = protoLoader.loadSync(ECHO_PROTO, { keepCase: true, longs: Number, defaults: true });
const pkg = grpc.loadPackageDefinition(definition) as unknown as { swytest: { Echo: grpc.ServiceClientConstructor } };
export const EchoService = pkg.swytest.Echo;
/** The generic client methods (unary(req, md, opts, cb), serverStream(req, md, opts), ...). */
export type EchoClient = grpc.Client & Record<'Unary' | 'ServerStream' | 'ClientStream' | 'Bidi', (...args: any[]) => any>;

/** protobufjs types of the test messages, for hand-built gRPC-Web clients. */
/** Field names as in the .proto (snake_case), like the grpc-js side (keepCase). */
export const echoRoot = new protobuf.Root().loadSync(ECHO_PROTO, { keepCase: true });
export const EchoRequestType = echoRoot.lookupType('swytest.EchoRequest');
export const StreamRequestType = echoRoot.lookupType('swytest.StreamRequest');
export const EchoReplyType = echoRoot.lookupType('swytest.EchoReply');

export interface GrpcUpstream {
  readonly port: number;
  readonly addr: string;
  /** Server-side events in order: `<Method>:cancelled`, `<Method>:done`, `<Method>:start`. */
  readonly events: string[];
  /** Resolves when `event` has been recorded (or after timeoutMs with false). */
  waitEvent(event: string, timeoutMs?: number): Promise<boolean>;
  close(): Promise<void>;
}

function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

function replyOf(text: string, seq: number, md: grpc.Metadata, keys: readonly string[] = [], pad = 0): EchoReply {
  const headers: Record<string, string> = {};
  for (const k of keys) {
    const v = md.get(k);
    if (v.length > 0) headers[k] = v.map(String).join(',');
  }
  return { text, seq, headers, sent_at: Date.now(), pad: Buffer.alloc(pad, 0x61) };
}

/** `port` 0 (default) picks a free one. */
export async function startGrpcUpstream(opts: { tls?: { key: string; cert: string }; port?: number } = {}): Promise<GrpcUpstream> {
  const server = new grpc.Server();
  const events: string[] = [];
  const waiters: { event: string; resolve: (ok: boolean) => void }[] = [];
  const record = (e: string): void => {
    events.push(e);
    for (let i = waiters.length - 1; i >= 0; i--) {
      if (waiters[i]!.event === e) {
        waiters[i]!.resolve(true);
        waiters.splice(i, 1);
      }
    }
  };
  server.addService(EchoService.service, {
    Unary: (call: grpc.ServerUnaryCall<EchoRequest, EchoReply>, cb: grpc.sendUnaryData<EchoReply>) => {
      const req = call.request;
      record('Unary:start');
      let cancelled = false;
      call.on('cancelled', () => {
        cancelled = true;
        record('Unary:cancelled');
      });
      void (async () => {
        if (req.delay_ms) await sleep(req.delay_ms);
        if (cancelled) return;
        if (req.fail_code) {
          cb({ code: req.fail_code, details: req.fail_message ?? '' });
          return;
        }
        call.sendMetadata(new grpc.Metadata());
        const trailer = new grpc.Metadata();
        trailer.set('x-trailer', 'unary');
        const reply = replyOf(req.text ?? '', 0, call.metadata, req.echo_headers);
        // The deadline the server received (from grpc-timeout), in ms from now; absent without one.
        const deadline = call.getDeadline();
        const at = deadline instanceof Date ? deadline.getTime() : deadline;
        if (Number.isFinite(at)) reply.headers['deadline-in-ms'] = String(at - Date.now());
        cb(null, reply, trailer);
        record('Unary:done');
      })();
    },
    ServerStream: (call: grpc.ServerWritableStream<StreamRequest, EchoReply>) => {
      const req = call.request;
      record('ServerStream:start');
      let cancelled = false;
      call.on('cancelled', () => {
        cancelled = true;
        record('ServerStream:cancelled');
      });
      void (async () => {
        for (let i = 0; i < (req.count ?? 0); i++) {
          if (cancelled) return;
          if (i > 0 && req.interval_ms) await sleep(req.interval_ms);
          if (cancelled) return;
          call.write(replyOf(`${req.text}-${i}`, i, call.metadata, [], req.pad_bytes ?? 0));
        }
        if (cancelled) return;
        // grpc-js servers fail a stream by emitting the error (it becomes the status).
        if (req.fail_code) call.emit('error', Object.assign(new Error('stream failed'), { code: req.fail_code, details: 'stream failed' }));
        else call.end();
        record('ServerStream:done');
      })();
    },
    ClientStream: (call: grpc.ServerReadableStream<EchoRequest, EchoReply>, cb: grpc.sendUnaryData<EchoReply>) => {
      const texts: string[] = [];
      call.on('data', (m: EchoRequest) => texts.push(m.text ?? ''));
      call.on('cancelled', () => record('ClientStream:cancelled'));
      call.on('end', () => {
        cb(null, replyOf(texts.join('+'), texts.length, call.metadata));
        record('ClientStream:done');
      });
    },
    Bidi: (call: grpc.ServerDuplexStream<EchoRequest, EchoReply>) => {
      let seq = 0;
      call.on('cancelled', () => record('Bidi:cancelled'));
      call.on('data', (m: EchoRequest) => {
        if (m.fail_code) {
          call.emit('error', Object.assign(new Error(m.fail_message ?? ''), { code: m.fail_code, details: m.fail_message ?? '' }));
          return;
        }
        call.write(replyOf(`echo:${m.text ?? ''}`, seq++, call.metadata));
      });
      call.on('end', () => {
        call.end();
        record('Bidi:done');
      });
    },
  });
  const creds = opts.tls ? grpc.ServerCredentials.createSsl(null, [{ private_key: Buffer.from(opts.tls.key), cert_chain: Buffer.from(opts.tls.cert) }]) : grpc.ServerCredentials.createInsecure();
  const port = await new Promise<number>((resolve, reject) => {
    server.bindAsync(`127.0.0.1:${opts.port ?? 0}`, creds, (err, p) => (err ? reject(err) : resolve(p)));
  });
  return {
    port,
    addr: `127.0.0.1:${port}`,
    events,
    waitEvent(event, timeoutMs = 3000) {
      if (events.includes(event)) return Promise.resolve(true);
      return new Promise((resolve) => {
        const w = { event, resolve };
        waiters.push(w);
        setTimeout(() => {
          const i = waiters.indexOf(w);
          if (i >= 0) waiters.splice(i, 1);
          resolve(false);
        }, timeoutMs).unref();
      });
    },
    close: () =>
      new Promise<void>((resolve) => {
        server.tryShutdown(() => resolve());
        setTimeout(() => {
          server.forceShutdown();
          resolve();
        }, 1000).unref();
      }),
  };
}

/** A grpc-js client of swytest.Echo; `ca` makes it a TLS client trusting that CA. */
export function echoClient(target: string, opts: { ca?: string; serverName?: string } = {}): EchoClient {
  const creds = opts.ca !== undefined ? grpc.credentials.createSsl(Buffer.from(opts.ca)) : grpc.credentials.createInsecure();
  const options: grpc.ClientOptions = {};
  if (opts.serverName !== undefined) options['grpc.ssl_target_name_override'] = opts.serverName;
  return new EchoService(target, creds, options) as unknown as EchoClient;
}

export function unary(client: EchoClient, req: EchoRequest, opts: { deadlineMs?: number; metadata?: Record<string, string> } = {}): Promise<{ reply: EchoReply; trailers: grpc.Metadata }> {
  return new Promise((resolve, reject) => {
    const md = new grpc.Metadata();
    for (const [k, v] of Object.entries(opts.metadata ?? {})) md.set(k, v);
    const callOpts: grpc.CallOptions = opts.deadlineMs !== undefined ? { deadline: Date.now() + opts.deadlineMs } : {};
    let trailers = new grpc.Metadata();
    const call = client.Unary(req, md, callOpts, (err: grpc.ServiceError | null, reply: EchoReply) => {
      if (err) reject(err);
      else setImmediate(() => resolve({ reply, trailers }));
    });
    call.on('status', (s: grpc.StatusObject) => (trailers = s.metadata));
  });
}

export interface TestCa {
  readonly ca: string;
  readonly key: string;
  readonly cert: string;
  cleanup(): Promise<void>;
}

/** A CA and a server certificate it signed for localhost / 127.0.0.1 (openssl). */
export async function makeTestCa(): Promise<TestCa> {
  const { dir, cleanup } = await tempDir('swy-grpc-ca-');
  const f = (n: string): string => path.join(dir, n);
  await run('openssl', ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-keyout', f('ca.key'), '-out', f('ca.pem'), '-days', '2', '-subj', '/CN=Switchyard gRPC Test CA']);
  await run('openssl', ['req', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-keyout', f('srv.key'), '-out', f('srv.csr'), '-subj', '/CN=localhost']);
  await writeFile(f('ext.cnf'), 'subjectAltName=DNS:localhost,IP:127.0.0.1\nbasicConstraints=CA:FALSE\nkeyUsage=digitalSignature,keyEncipherment\nextendedKeyUsage=serverAuth\n');
  await run('openssl', ['x509', '-req', '-in', f('srv.csr'), '-CA', f('ca.pem'), '-CAkey', f('ca.key'), '-CAcreateserial', '-out', f('srv.pem'), '-days', '2', '-extfile', f('ext.cnf')]);
  const [ca, key, cert] = await Promise.all([readFile(f('ca.pem'), 'utf8'), readFile(f('srv.key'), 'utf8'), readFile(f('srv.pem'), 'utf8')]);
  return { ca, key, cert, cleanup };
}

// gRPC-Web wire format ------------------------------------------------------------------------------------------

/** One length-prefixed message: flag byte (0x80 = trailers), 4-byte big-endian length, payload. */
export function frame(payload: Uint8Array, flag = 0): Buffer {
  const out = Buffer.alloc(5 + payload.length);
  out[0] = flag;
  out.writeUInt32BE(payload.length, 1);
  out.set(payload, 5);
  return out;
}

export interface WebFrame {
  flag: number;
  payload: Buffer;
}

/** Splits a complete gRPC-Web body into frames; throws on a truncated frame. */
export function parseFrames(body: Buffer): WebFrame[] {
  const frames: WebFrame[] = [];
  let off = 0;
  while (off < body.length) {
    if (off + 5 > body.length) throw new Error('truncated frame header');
    const len = body.readUInt32BE(off + 1);
    if (off + 5 + len > body.length) throw new Error('truncated frame');
    frames.push({ flag: body[off]!, payload: body.subarray(off + 5, off + 5 + len) });
    off += 5 + len;
  }
  return frames;
}

/** The `name:value\r\n` block of a trailer frame. */
export function parseTrailerBlock(payload: Buffer): Record<string, string> {
  const out: Record<string, string> = {};
  for (const line of payload.toString('latin1').split('\r\n')) {
    if (line === '') continue;
    const i = line.indexOf(':');
    out[line.slice(0, i).trim().toLowerCase()] = line.slice(i + 1).trim();
  }
  return out;
}

/** Decodes a grpc-web-text body: base64 segments, each padded, possibly concatenated (one per flush). */
export function decodeTextBody(text: string): Buffer {
  const parts: Buffer[] = [];
  let start = 0;
  // A '=' run ends one padded segment; the decoder must restart after it.
  for (let i = 0; i < text.length; i++) {
    if (text[i] === '=' && (i + 1 === text.length || text[i + 1] !== '=')) {
      parts.push(Buffer.from(text.slice(start, i + 1), 'base64'));
      start = i + 1;
    }
  }
  if (start < text.length) parts.push(Buffer.from(text.slice(start), 'base64'));
  return Buffer.concat(parts);
}
