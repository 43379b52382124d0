// Local answers (route not found, plugin exits, proxy errors) in APISIX's shapes.
import type { PluginResponse } from '../plugin/plugin.ts';

/** nginx's reason phrases for the statuses the gateway answers itself. */
export const STATUS_TEXT: Readonly<Record<number, string>> = {
  400: 'Bad Request',
  401: 'Authorization Required',
  403: 'Forbidden',
  404: 'Not Found',
  405: 'Not Allowed',
  413: 'Request Entity Too Large',
  429: 'Too Many Requests',
  500: 'Internal Server Error',
  502: 'Bad Gateway',
  503: 'Service Temporarily Unavailable',
  504: 'Gateway Time-out',
};

/** nginx-style HTML error page (what APISIX answers when a plugin exits without a body). */
export function errorPage(status: number): string {
  const text = `${status} ${STATUS_TEXT[status] ?? 'Error'}`;
  return `<html>\r\n<head><title>${text}</title></head>\r\n<body>\r\n<center><h1>${text}</h1></center>\r\n<hr><center>switchyard</center>\r\n</body>\r\n</html>\r\n`;
}

export interface LocalBody {
  body: Buffer;
  contentType: string;
}

export function encodeBody(r: PluginResponse): LocalBody {
  const b = r.body;
  if (b === undefined) return { body: Buffer.from(errorPage(r.status)), contentType: 'text/html; charset=utf-8' };
  if (Buffer.isBuffer(b)) return { body: b, contentType: 'text/plain; charset=utf-8' };
  if (typeof b === 'string') return { body: Buffer.from(b), contentType: 'text/plain; charset=utf-8' };
  // APISIX's JSON answers end with a newline.
  return { body: Buffer.from(`${JSON.stringify(b)}\n`), contentType: 'application/json' };
}

