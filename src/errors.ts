// One error catalog: stable codes, HTTP status and message. Compare errors by code, never by text.
// A test (test/errors.test.ts) keeps codes unique and documented.

export interface ErrorSpec {
  readonly status: number;
  readonly message: string;
}

export const ERRORS = {
  SWY_ERR_ROUTE_NOT_FOUND: { status: 404, message: '404 Route Not Found' },
  SWY_ERR_NO_UPSTREAM_NODE: { status: 502, message: 'no valid upstream node' },
  SWY_ERR_UPSTREAM_UNAVAILABLE: { status: 502, message: 'upstream unavailable' },
  SWY_ERR_UPSTREAM_TIMEOUT: { status: 504, message: 'upstream timed out' },
  SWY_ERR_BAD_REQUEST: { status: 400, message: 'bad request' },
  SWY_ERR_HEADERS_TOO_LARGE: { status: 431, message: 'request header fields too large' },
  SWY_ERR_BODY_TOO_LARGE: { status: 413, message: 'request entity too large' },
  SWY_ERR_SERVICE_MISSING: { status: 404, message: 'missing service' },
  SWY_ERR_PLUGIN_CONFIG_MISSING: { status: 503, message: 'missing plugin config' },
  SWY_ERR_PLUGIN_FAILED: { status: 500, message: 'plugin failed' },
  SWY_ERR_STORE_UNAVAILABLE: { status: 503, message: 'config store unavailable' },
  SWY_ERR_STORE_CONFLICT: { status: 503, message: 'value changed before overwritten' },
  SWY_ERR_STORE_READONLY: { status: 400, message: 'config store is read-only' },
  SWY_ERR_CONFIG_INVALID: { status: 400, message: 'invalid configuration' },
  SWY_ERR_STREAM_NO_ROUTE: { status: 0, message: 'no stream route matched' },
  SWY_ERR_STREAM_CONNECT: { status: 0, message: 'failed to connect to any upstream node' },
} as const satisfies Record<string, ErrorSpec>;

export type ErrorCode = keyof typeof ERRORS;

export class SwitchyardError extends Error {
  readonly code: ErrorCode;
  readonly status: number;
  constructor(code: ErrorCode, detail?: string, options?: { cause?: unknown }) {
    const spec = ERRORS[code];
    super(detail ? `${spec.message}: ${detail}` : spec.message, options);
    this.name = 'SwitchyardError';
    this.code = code;
    this.status = spec.status;
  }
}

export function isSwitchyardError(err: unknown, code?: ErrorCode): err is SwitchyardError {
  return err instanceof SwitchyardError && (code === undefined || err.code === code);
}
