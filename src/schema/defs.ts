// Shared JSON Schema fragments of the APISIX 3.x resource schemas (draft-07, compiled by ajv).
// Fragments are plain objects reused by reference; nothing here may be mutated after module load.
import type { JsonObject } from '../config/resources.ts';

/** Resource ids: 1-64 chars of [a-zA-Z0-9-_.] or a positive integer (etcd ids written by APISIX). */
export const idSchema: JsonObject = {
  anyOf: [
    { type: 'string', minLength: 1, maxLength: 64, pattern: '^[a-zA-Z0-9-_.]+$' },
    { type: 'integer', minimum: 1 },
  ],
};

/** Host pattern: only a leading wildcard is allowed (`*.foo.com`, not `a.*.foo.com`); `*` alone matches all. */
export const HOST_PATTERN = '^\\*$|^\\*?[0-9a-zA-Z-._\\[\\]:]+$';
export const hostDef: JsonObject = { type: 'string', pattern: HOST_PATTERN };

/** SNI pattern of ssl objects and stream routes (no IPv6 literals). */
export const SNI_PATTERN = '^\\*?[0-9a-zA-Z-._]+$';

const IPV4_SEG = '([0-9]|[1-9][0-9]|1[0-9]{2}|2[0-4][0-9]|25[0-5])';
const IPV4 = [IPV4_SEG, IPV4_SEG, IPV4_SEG, IPV4_SEG].join('\\.');
// Deliberately loose for IPv6/CIDR (a strict grammar regex is unreadable); the router parses CIDRs again.
const IPV6_LOOSE = '([a-fA-F0-9]{0,4}:){1,8}(:[a-fA-F0-9]{0,4}){0,8}([a-fA-F0-9]{0,4})?';

/** IPv4, IPv4/CIDR, IPv6 or IPv6/CIDR. */
export const ipAlternatives: JsonObject[] = [
  { title: 'IPv4', type: 'string', format: 'ipv4' },
  { title: 'IPv4/CIDR', type: 'string', pattern: `^${IPV4}/([12]?[0-9]|3[0-2])$` },
  { title: 'IPv6', type: 'string', format: 'ipv6' },
  { title: 'IPv6/CIDR', type: 'string', pattern: `^${IPV6_LOOSE}/[0-9]{1,3}$` },
];
export const ipDef: JsonObject = { type: 'string', anyOf: ipAlternatives };

/** `scheme://host[:port]` (secret managers, loggers). */
export const uriDef: JsonObject = {
  type: 'string',
  pattern: '^[^\\/]+:\\/\\/([\\da-zA-Z.-]+|\\[[\\da-fA-F:]+\\])(:\\d+)?',
};

export const timestampDef: JsonObject = { type: 'integer' };

export const labelsDef: JsonObject = {
  description: 'key/value pairs to specify attributes',
  type: 'object',
  patternProperties: {
    '.*': { description: 'value of label', type: 'string', pattern: '^\\S+$', minLength: 1, maxLength: 256 },
  },
};

export const nameDef: JsonObject = { type: 'string', minLength: 1, maxLength: 256 };
export const descDef: JsonObject = { type: 'string', maxLength: 256 };

/** Seconds; all three required. */
export const timeoutDef: JsonObject = {
  type: 'object',
  properties: {
    connect: { type: 'number', exclusiveMinimum: 0 },
    send: { type: 'number', exclusiveMinimum: 0 },
    read: { type: 'number', exclusiveMinimum: 0 },
  },
  required: ['connect', 'send', 'read'],
};

export const HTTP_METHODS = ['GET', 'POST', 'PUT', 'DELETE', 'PATCH', 'HEAD', 'OPTIONS', 'CONNECT', 'TRACE', 'PURGE'];
export const methodDef: JsonObject = { description: 'HTTP method', type: 'string', enum: HTTP_METHODS };

/** Plugin confs are checked one by one against each plugin's own schema, not here. */
export const pluginsDef: JsonObject = { type: 'object' };

/** `$secret://...` / `$env://...` references, resolved at use time (ssl cert/key may hold one). */
export const secretRefDef: JsonObject = { type: 'string', pattern: '^\\$(secret|env|ENV)://' };

export const certificateDef: JsonObject = { type: 'string', minLength: 128, maxLength: 64 * 1024 };
export const privateKeyDef: JsonObject = { type: 'string', minLength: 64, maxLength: 64 * 1024 };

/** The fields every stored resource may carry. */
export function commonProps(): Record<string, JsonObject> {
  return {
    id: idSchema,
    name: nameDef,
    desc: descDef,
    labels: labelsDef,
    create_time: timestampDef,
    update_time: timestampDef,
  };
}
