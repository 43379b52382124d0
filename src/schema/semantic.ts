// Checks APISIX makes beyond the JSON Schema (apisix/upstream.lua check_upstream_conf, admin/*.lua check_conf).
// Each runs on a value that already passed its schema (defaults filled in).
import { IMPLEMENTED_DISCOVERY } from '../config/local-compat.ts';
import type { JsonObject } from '../config/resources.ts';
import { createPrivateKey, X509Certificate } from 'node:crypto';
import { isIPv6 } from 'node:net';
import { compileSchema, runSchema } from './compile.ts';
import { isPlainObject, type CompileVars } from './plugins.ts';
import { HASH_KEY_SCHEMAS } from './upstream.ts';

/** Upstream rules: pass_host=rewrite needs upstream_host; chash needs a valid `key` unless hash_on=consumer. */
export function checkUpstream(up: JsonObject): string | null {
  // APISIX accepts any discovery_type and answers 503 per request when its module is not loaded; an upstream
  // that cannot get nodes here is rejected up front so the cause shows in the Admin API answer and the log.
  if (typeof up.discovery_type === 'string' && up.nodes === undefined && !IMPLEMENTED_DISCOVERY.has(up.discovery_type)) {
    return `invalid configuration: discovery_type ${up.discovery_type} is not supported (implemented: ${[...IMPLEMENTED_DISCOVERY].join(', ')})`;
  }
  const bad = checkNodes(up);
  if (bad !== null) return bad;
  const tls = up.tls;
  if (isPlainObject(tls) && tls.client_cert !== undefined && !isSecretRef(tls.client_cert) && !isSecretRef(tls.client_key)) {
    const err = validatePem(tls.client_cert, tls.client_key);
    if (err !== null) return err;
  }
  if (up.pass_host === 'rewrite' && (typeof up.upstream_host !== 'string' || up.upstream_host === '')) {
    return "`upstream_host` can't be empty when `pass_host` is `rewrite`";
  }
  if (up.type !== 'chash') return null;
  const hashOn = typeof up.hash_on === 'string' ? up.hash_on : 'vars';
  if (hashOn !== 'consumer' && up.key === undefined) return 'missing key';
  if (hashOn === 'consumer') return null;
  const keySchema = HASH_KEY_SCHEMAS[hashOn];
  if (!keySchema) return `type is chash, err: invalid hash_on type ${hashOn}`;
  const err = runSchema(compileSchema(keySchema), up.key);
  return err === null ? null : `invalid configuration: ${err}`;
}

/**
 * A bare IPv6 host of the array form is ambiguous in the `host:port` keys balancers build; APISIX
 * (upstream.lua check_schema) rejects it. Map keys are left alone as APISIX does: `"::1": 1` is a valid host
 * without a port.
 */
function checkNodes(up: JsonObject): string | null {
  const nodes = up.nodes;
  if (!Array.isArray(nodes)) return null;
  for (const n of nodes) {
    if (isPlainObject(n) && typeof n.host === 'string' && isIPv6(n.host)) return IPV6_UNBRACKETED;
  }
  return null;
}

const IPV6_UNBRACKETED = "invalid configuration: IPv6 address must be enclosed with '[' and ']'";

/** The same rules for an inline `upstream` of a route, service or stream route. */
export function checkInlineUpstream(value: JsonObject): string | null {
  return isPlainObject(value.upstream) ? checkUpstream(value.upstream) : null;
}

/** Nodes of the array form get `priority: 0` (a default ajv cannot fill: it sits inside an anyOf branch). */
export function fillNodeDefaults(up: JsonObject): void {
  const nodes = up.nodes;
  if (!Array.isArray(nodes)) return;
  for (const n of nodes) {
    if (isPlainObject(n) && n.priority === undefined) n.priority = 0;
  }
}

/** APISIX checks these before the schema to give clearer messages than the schema's oneOf. */
export function checkRouteExclusive(value: JsonObject): string | null {
  if (value.host !== undefined && value.hosts !== undefined) return 'only one of host or hosts is allowed';
  if (value.remote_addr !== undefined && value.remote_addrs !== undefined) {
    return 'only one of remote_addr or remote_addrs is allowed';
  }
  return null;
}

export function checkRouteVars(value: JsonObject, compileVars: CompileVars | undefined): string | null {
  if (value.vars === undefined || !compileVars) return null;
  const err = compileVars(value.vars);
  return err === null ? null : `failed to validate the 'vars' expression: ${err}`;
}

/** xRPC logger filters of a stream route are expressions too. */
export function checkStreamLoggerFilters(value: JsonObject, compileVars: CompileVars | undefined): string | null {
  const protocol = value.protocol;
  if (!compileVars || !isPlainObject(protocol) || !Array.isArray(protocol.logger)) return null;
  for (const logger of protocol.logger) {
    if (!isPlainObject(logger) || logger.filter === undefined) continue;
    const err = compileVars(logger.filter);
    if (err !== null) return `failed to validate the 'filter' expression of logger ${String(logger.name)}: ${err}`;
  }
  return null;
}

const SECRET_URI = /^\$(secret|env):\/\//;

function isSecretRef(v: unknown): boolean {
  return typeof v === 'string' && SECRET_URI.test(v);
}

/** APISIX ssl.lua validate(): the texts mirror its OpenSSL-based messages (t/admin/ssl2.t). */
function validatePem(cert: unknown, key: unknown): string | null {
  try {
    new X509Certificate(String(cert));
  } catch {
    return 'failed to parse cert: PEM_read_bio_X509_AUX() failed';
  }
  if (key === undefined) return null;
  try {
    createPrivateKey(String(key));
  } catch {
    return 'failed to parse key: PEM_read_bio_PrivateKey() failed';
  }
  return null;
}

/** APISIX ssl.lua check_ssl_conf after the schema: PEM parsing of every pair, counts, client CA. */
export function checkSslConf(value: JsonObject): string | null {
  if (!isSecretRef(value.cert) && !isSecretRef(value.key) && value.cert !== undefined) {
    const err = validatePem(value.cert, value.key);
    if (err !== null) return err;
  }
  if (value.type === 'client') return null;
  const pairs = checkSslPairs(value);
  if (pairs !== null) return pairs;
  const certs = Array.isArray(value.certs) ? value.certs : [];
  const keys = Array.isArray(value.keys) ? value.keys : [];
  for (let i = 0; i < certs.length; i++) {
    if (isSecretRef(certs[i]) || isSecretRef(keys[i])) continue;
    const err = validatePem(certs[i], keys[i]);
    if (err !== null) return `failed to handle cert-key pair[${i + 1}]: ${err}`;
  }
  const client = value.client;
  if (isPlainObject(client) && client.ca !== undefined && !isSecretRef(client.ca)) {
    const err = validatePem(client.ca, undefined);
    if (err !== null) return `failed to validate client_cert: ${err}`;
  }
  return null;
}

export function checkSslPairs(value: JsonObject): string | null {
  const certs = value.certs;
  const keys = value.keys;
  if (certs === undefined && keys === undefined) return null;
  const nc = Array.isArray(certs) ? certs.length : 0;
  const nk = Array.isArray(keys) ? keys.length : 0;
  return nc === nk ? null : 'mismatched number of certs and keys';
}
