// A real @grpc/grpc-js upstream for the grpc-transcode tests (fixtures/transcode.proto), on a random loopback
// port. It records what each call received (metadata, deadline) so tests can check what the gateway sent.
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import * as grpc from '@grpc/grpc-js';
import * as protoLoader from '@grpc/proto-loader';
import protobuf from 'protobufjs';

export const PROTO_FILE = path.join(path.dirname(fileURLToPath(import.meta.url)), 'fixtures', 'transcode.proto');

/**
 * APISIX's example server's google.rpc.Status for GetErrResp (t/plugin/grpc-transcode3.t): code 14 "Out of
 * service" with one helloworld.ErrorDetail {code: 1, message: "The server is out of service", type: "service"}.
 */
export const STATUS_DETAILS_B64 =
  'CA4SDk91dCBvZiBzZXJ2aWNlGlcKKnR5cGUuZ29vZ2xlYXBpcy5jb20vaGVsbG93b3JsZC5FcnJvckRldGFpbBIpCAESHFRoZSBzZXJ2ZXIgaXMgb3V0IG9mIHNlcnZpY2UaB3NlcnZpY2U';

export interface SeenCall {
  method: string;
  request: any;
  metadata: Record<string, unknown>;
  /** Milliseconds from receipt to the call's deadline; Infinity without one. */
  deadlineInMs: number;
}

export interface GreeterServer {
  readonly addr: string;
  readonly seen: SeenCall[];
  close(): Promise<void>;
}

type Unary = grpc.handleUnaryCall<any, any>;

function record(seen: SeenCall[], method: string, call: grpc.ServerUnaryCall<any, any>): void {
  const d = call.getDeadline();
  const at = d instanceof Date ? d.getTime() : d;
  seen.push({ method, request: call.request, metadata: call.metadata.getMap(), deadlineInMs: Number.isFinite(at) ? at - Date.now() : Infinity });
}

export async function startGreeter(): Promise<GreeterServer> {
  const def = protoLoader.loadSync(PROTO_FILE, { keepCase: true, longs: String, enums: String, defaults: false, oneofs: true });
  const pkg = grpc.loadPackageDefinition(def) as any;
  const seen: SeenCall[] = [];
  const sayHello: Unary = (call, cb) => {
    record(seen, 'SayHello', call);
    const r = call.request;
    let message = `Hello ${r.name ?? ''}`;
    if (r.person) {
      message += `, name: ${r.person.name ?? ''}`;
      if (r.person.age) message += `, age: ${r.person.age}`;
    }
    cb(null, { message, items: r.items ?? [], gender: r.gender ?? 'GENDER_UNKNOWN' });
  };
  const handlers: Record<string, Unary> = {
    SayHello: sayHello,
    SayHelloAfterDelay: (call, cb) => {
      record(seen, 'SayHelloAfterDelay', call);
      const t = setTimeout(() => cb(null, { message: `Hello ${call.request.name ?? ''}` }), 1500);
      call.on('cancelled', () => clearTimeout(t));
    },
    Plus: (call, cb) => {
      record(seen, 'Plus', call);
      const sum = BigInt(call.request.a ?? '0') + BigInt(call.request.b ?? '0');
      cb(null, { result: sum.toString() });
    },
    GetErrResp: (call, cb) => {
      record(seen, 'GetErrResp', call);
      const md = new grpc.Metadata();
      md.set('grpc-status-details-bin', Buffer.from(STATUS_DETAILS_B64, 'base64'));
      cb({ code: grpc.status.UNAVAILABLE, details: 'Out of service', metadata: md });
    },
    Echo: (call, cb) => {
      // proto-loader (longs: String) keys int64 maps by protobufjs' 8-byte hash and cannot re-encode them.
      const byId = call.request.by_id as Record<string, string> | undefined;
      if (byId !== undefined) {
        const fixed: Record<string, string> = {};
        for (const [k, v] of Object.entries(byId)) fixed[protobuf.util.LongBits.fromHash(k).toLong(false).toString()] = v;
        call.request.by_id = fixed;
      }
      record(seen, 'Echo', call);
      cb(null, call.request);
    },
    Fail: (call, cb) => {
      record(seen, 'Fail', call);
      cb({ code: call.request.code ?? 2, details: call.request.message ?? 'failed' });
    },
  };
  const server = new grpc.Server();
  server.addService(pkg.helloworld.Greeter.service, handlers);
  const port = await new Promise<number>((resolve, reject) => {
    server.bindAsync('127.0.0.1:0', grpc.ServerCredentials.createInsecure(), (err, p) => (err ? reject(err) : resolve(p)));
  });
  return {
    addr: `127.0.0.1:${port}`,
    seen,
    close: () =>
      new Promise<void>((resolve) => {
        server.tryShutdown(() => resolve());
        setTimeout(() => server.forceShutdown(), 2000).unref();
      }),
  };
}
