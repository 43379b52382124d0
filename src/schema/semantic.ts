// Checks APISIX makes beyond the JSON Schema (apisix/upstream.lua check_upstream_conf, admin/*.lua check_conf).
// Each runs on a value that already passed its schema (defaults filled in).
import type { JsonObject } from '../config/resources.ts';
import { compileSchema, runSchema } from './compile.ts';
import { isPlainObject, type CompileVars } from './plugins.ts';
import { HASH_KEY_SCHEMAS } from './upstream.ts';

/** Upstream rules: pass_host=rewrite needs upstream_host; chash needs a valid `key` unless hash_on=consumer. */
export function checkUpstream(up: JsonObject): string | null {
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

export function checkSslPairs(value: JsonObject): string | null {
  const certs = value.certs;
  const keys = value.keys;
  if (certs === undefined && keys === undefined) return null;
  const nc = Array.isArray(certs) ? certs.length : 0;
  const nk = Array.isArray(keys) ? keys.length : 0;
  return nc === nk ? null : 'mismatched number of certs and keys';
}
