// gRPC status -> HTTP (APISIX grpc-transcode.lua status_rel, after Google's API design guide) and the
// `grpc-status-details-bin` body of show_status_in_body (a base64 google.rpc.Status; its `details` are
// decoded with `status_detail_type` when given, else shown as {type_url, value}).
import protobuf from 'protobufjs';
import { GRPC_TO_HTTP, grpcStatusCode } from '../../../pipeline/grpc.ts';
import { messageText, type DecodeOptions } from './response.ts';

/** HTTP status for a non-zero grpc-status header value (GRPC_TO_HTTP); 599 for codes outside 1-16, as APISIX. */
export function httpStatusOf(grpcStatus: string): number {
  const code = grpcStatusCode(grpcStatus);
  return code >= 1 ? GRPC_TO_HTTP[code]! : 599;
}

const statusRoot = protobuf.parse(
  `syntax = "proto3";
  package grpc_status;
  message Any { string type_url = 1; bytes value = 2; }
  message ErrorStatus { int32 code = 1; string message = 2; repeated Any details = 3; }`,
  { keepCase: true },
).root;
statusRoot.resolveAll();
const ErrorStatus = statusRoot.lookupType('grpc_status.ErrorStatus');
const Any = statusRoot.lookupType('grpc_status.Any');

const BASE64 = /^[A-Za-z0-9+/_-]*={0,2}$/;

/** The JSON body for a grpc-status-details-bin value, or an error text that becomes the body (as APISIX). */
export function statusBody(
  detailsBin: string,
  detailType: protobuf.Type | undefined,
  detailTypeName: string | undefined,
  o: DecodeOptions,
): { ok: true; body: string } | { ok: false; body: string; log: string } {
  if (!BASE64.test(detailsBin)) {
    const msg = 'grpc-status-details-bin is not base64 format';
    return { ok: false, body: msg, log: msg };
  }
  let status: protobuf.Message;
  try {
    status = ErrorStatus.decode(Buffer.from(detailsBin, 'base64'));
  } catch (err) {
    const msg = 'failed to call pb.decode to decode grpc-status-details-bin';
    return { ok: false, body: msg, log: `${msg}, err: ${(err as Error).message}` };
  }
  const s = status as unknown as { code?: number; message?: string; details?: protobuf.Message[] };
  const details = s.details ?? [];
  let detailsText: string;
  if (detailTypeName === undefined) {
    detailsText = '[' + details.map((d) => messageText(Any, d, o)).join(',') + ']';
  } else {
    const parts: string[] = [];
    for (const d of details) {
      const value = (d as unknown as { value?: Uint8Array }).value ?? new Uint8Array(0);
      try {
        if (detailType === undefined) throw new Error(`type '${detailTypeName}' does not exists`);
        parts.push(messageText(detailType, detailType.decode(value), o));
      } catch (err) {
        const msg = 'failed to call pb.decode to decode details in grpc-status-details-bin';
        return { ok: false, body: msg, log: `${msg}, err: ${(err as Error).message}` };
      }
    }
    detailsText = '[' + parts.join(',') + ']';
  }
  const body = `{"error":{"code":${s.code ?? 0},"message":${JSON.stringify(s.message ?? '')},"details":${detailsText}}}`;
  return { ok: true, body };
}
