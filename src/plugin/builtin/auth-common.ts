// Pieces every auth plugin (key-auth, basic-auth, jwt-auth, hmac-auth) shares, so that the consumer identity
// headers, the anonymous-consumer fallback and secret comparison behave the same whichever plugin
// authenticated the request (APISIX consumer.attach_consumer / get_anonymous_consumer).
import { createHash, timingSafeEqual } from 'node:crypto';
import type { JsonObject } from '../../config/resources.ts';
import type { ConsumerRef, HttpContext } from '../context.ts';
import type { ConsumerDirectory, PluginResponse } from '../plugin.ts';

/**
 * A consumer as auth plugins attach it. `customId` is APISIX's `labels.custom_id` of the consumer, sent
 * upstream as X-Consumer-Custom-Id; it is honoured as soon as the consumer directory provides it.
 */
export interface AuthConsumer extends ConsumerRef {
  readonly customId?: string;
}

const IDENTITY_HEADERS = ['x-consumer-username', 'x-credential-identifier', 'x-consumer-custom-id'] as const;

/**
 * Attaches the consumer and replaces the identity headers sent upstream: values a client supplied for any of
 * them are dropped, so the upstream can trust what it receives.
 */
export function attachConsumer(ctx: HttpContext, consumer: AuthConsumer): void {
  const req = ctx.request;
  for (const h of IDENTITY_HEADERS) req.setHeader(h, null);
  ctx.consumer = consumer;
  req.setHeader('x-consumer-username', consumer.username);
  if (consumer.credentialId !== undefined) req.setHeader('x-credential-identifier', consumer.credentialId);
  if (consumer.customId !== undefined) req.setHeader('x-consumer-custom-id', consumer.customId);
}

function digest(s: string): Buffer {
  return createHash('sha256').update(s).digest();
}

/** Constant-time equality of two secrets (the digests have equal length whatever the inputs). */
export function secretEquals(a: string, b: string): boolean {
  return timingSafeEqual(digest(a), digest(b));
}

/** Constant-time equality of two byte strings whose length is not secret (MACs, digests). */
export function bytesEqual(a: Uint8Array, b: Uint8Array): boolean {
  return a.length === b.length && timingSafeEqual(a, b);
}

/**
 * On an authentication failure: attaches `anonymous` (when configured) and returns undefined so the request
 * proceeds; returns `noAnonymous` when that consumer does not exist, else `reject`.
 */
export function failOrAnonymous(
  ctx: HttpContext,
  consumers: ConsumerDirectory,
  anonymous: string | undefined,
  reject: PluginResponse,
  noAnonymous: PluginResponse,
): PluginResponse | undefined {
  if (anonymous === undefined) return reject;
  const anon = consumers.get?.(anonymous);
  if (anon === undefined) return noAnonymous;
  attachConsumer(ctx, anon);
  return undefined;
}

/** A 401 with APISIX's `{"message": ...}` body and the plugin's challenge header. */
export function unauthorized(message: string, challenge: Readonly<Record<string, string>>): PluginResponse {
  return { status: 401, body: { message }, headers: challenge };
}

/** APISIX schema_def.get_realm_schema: printable ASCII without `"` and `\`, 1-128 chars. */
export function realmSchema(defaultValue: string): JsonObject {
  return { type: 'string', pattern: '^[\\x20-\\x21\\x23-\\x5B\\]-\\x7E]+$', default: defaultValue, minLength: 1, maxLength: 128 };
}

export const anonymousConsumerSchema: JsonObject = { type: 'string', minLength: 1 };

const BASE64_CHARS = /^[A-Za-z0-9+/]*$/;

/**
 * nginx's ngx.decode_base64: standard alphabet, padding optional, anything after the first `=` ignored;
 * null when a character before it is outside the alphabet or the length cannot be base64.
 */
export function decodeBase64Lenient(s: string): Buffer | null {
  const eq = s.indexOf('=');
  const body = eq < 0 ? s : s.slice(0, eq);
  if (!BASE64_CHARS.test(body) || body.length % 4 === 1) return null;
  return Buffer.from(body, 'base64');
}

/** The first value of a possibly repeated header. */
export function firstHeader(v: string | string[] | undefined): string | undefined {
  return Array.isArray(v) ? v[0] : v;
}

/** The raw query string without every occurrence of argument `name` (other arguments keep their encoding). */
export function removeQueryArg(query: string, name: string): string {
  if (query === '') return query;
  const kept: string[] = [];
  for (const part of query.split('&')) {
    const eq = part.indexOf('=');
    const raw = eq < 0 ? part : part.slice(0, eq);
    let decoded = raw;
    try {
      decoded = decodeURIComponent(raw.replaceAll('+', ' '));
    } catch {
      /* malformed escapes: compare raw */
    }
    if (decoded !== name) kept.push(part);
  }
  return kept.join('&');
}
