// Request-body helpers of the prompt plugins (APISIX get_request_body_table): the JSON body as an object, or
// APISIX's 400 answer. The plugins write the changed body back with ctx.request.setBody(), which ai-proxy's
// later read sees.
import type { JsonObject } from '../../../config/resources.ts';
import type { HttpContext } from '../../context.ts';
import type { PluginResponse } from '../../plugin.ts';

export type ParsedBody = { readonly ok: true; readonly body: JsonObject } | { readonly ok: false; readonly response: PluginResponse };

const fail = (message: string): ParsedBody => ({ ok: false, response: { status: 400, body: { message } } });

export async function jsonBody(ctx: HttpContext, maxSize: number): Promise<ParsedBody> {
  let raw: Buffer;
  try {
    raw = await ctx.request.readBody();
  } catch (err) {
    return fail(`could not get body: ${(err as Error).message}`);
  }
  if (raw.length === 0) return fail('could not get body: request body is empty');
  if (raw.length > maxSize) return fail(`could not get body: request size ${raw.length} is greater than the maximum size ${maxSize} allowed`);
  try {
    const v: unknown = JSON.parse(raw.toString('utf8'));
    if (v !== null && typeof v === 'object' && !Array.isArray(v)) return { ok: true, body: v as JsonObject };
    return fail('could not parse JSON request body: not an object');
  } catch (err) {
    return fail(`could not parse JSON request body: ${(err as Error).message}`);
  }
}

export const promptSchema: JsonObject = {
  type: 'object',
  properties: { role: { type: 'string', enum: ['system', 'user', 'assistant'] }, content: { type: 'string', minLength: 1 } },
  required: ['role', 'content'],
};
