// Shared by dubbo-proxy and http-dubbo: the body read with APISIX's limits, and how a transport failure of a
// Dubbo call counts for retries and passive health.
import type { HttpContext } from '../../context.ts';
import type { PluginResponse } from '../../plugin.ts';
import type { AttemptFailureKind } from '../../terminal-attempts.ts';
import type { RpcTransportFailure } from '../../terminals.ts';

/** The whole request body, or the answer APISIX gives when it cannot be read (413 past `max`). */
export async function readBody(ctx: HttpContext, max: number): Promise<Buffer | PluginResponse> {
  const cl = Number(ctx.request.headers['content-length'] ?? 0);
  if (cl > max) return { status: 413 };
  let body: Buffer;
  try {
    body = await ctx.request.readBody();
  } catch (err) {
    return { status: (err as { status?: unknown }).status === 413 ? 413 : 400 };
  }
  return body.length > max ? { status: 413 } : body;
}

export interface FailureClass {
  readonly kind: AttemptFailureKind;
  /** The call never left the gateway: another provider may take it. */
  readonly retryable: boolean;
}

const CONNECT: FailureClass = { kind: 'connect', retryable: true };
const TIMEOUT: FailureClass = { kind: 'timeout', retryable: false };
const RESET: FailureClass = { kind: 'reset', retryable: false };
const PROTOCOL: FailureClass = { kind: 'protocol', retryable: false };

export function classify(f: RpcTransportFailure): FailureClass {
  switch (f.code) {
    case 'connect_failed':
    case 'overloaded':
      return CONNECT;
    case 'timeout':
      return TIMEOUT;
    case 'connection_closed':
    case 'closed':
      return RESET;
    default:
      return PROTOCOL;
  }
}
