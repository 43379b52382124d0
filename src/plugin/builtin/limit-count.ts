// limit-count (APISIX priority 1002, access phase): at most `count` requests per `time_window` seconds per key,
// or several windows at once through `rules` (each with a key template, skipped when it resolves no variable,
// and its own header prefix). count/time_window may be templates resolved per request ("${http_n ?? 2}").
// - key: `key_type` var (default, `key` = remote_addr) | var_combination | constant; see limit-count/key.ts;
// - window_type fixed (the window starts at the key's first request) or sliding (the previous epoch-aligned
//   window weighted by its remaining share);
// - `group`: routes with the same group share counters and must carry the same conf ("group conf mismatched");
// - policy local counts per node, exactly, across all workers (as APISIX's nginx shared dict does; see
//   counters/cluster.ts); redis, redis-cluster and redis-sentinel share counts
//   between gateways; a Redis failure answers 500 {"error_msg":"failed to limit count"} unless
//   `allow_degradation`. `sync_interval` (delayed sync) is accepted and validated; counts are synced on every
//   request;
// - rejected: `rejected_code` (503) with {"error_msg": rejected_msg} or nginx's error page;
// - show_limit_quota_header: X-RateLimit-Limit / -Remaining / -Reset (names from plugin_metadata).
import type { JsonObject } from '../../config/resources.ts';
import type { PluginDef } from '../plugin.ts';
import { policySchema, redisCluster, redisSentinel, redisSingle } from '../counters/redis-schema.ts';
import { LimitCount } from './limit-count/limiter.ts';

const countOrTemplate: JsonObject = { oneOf: [{ type: 'integer', exclusiveMinimum: 0 }, { type: 'string' }] };
const NO_DELAYED_SYNC = -1;

const properties: JsonObject = {
  count: countOrTemplate,
  time_window: countOrTemplate,
  window_type: { type: 'string', enum: ['fixed', 'sliding'], default: 'fixed' },
  rules: {
    type: 'array',
    items: {
      type: 'object',
      properties: {
        count: countOrTemplate,
        time_window: countOrTemplate,
        key: { type: 'string' },
        header_prefix: { type: 'string', description: 'prefix for rate limit headers' },
      },
      required: ['count', 'time_window', 'key'],
    },
  },
  group: { type: 'string' },
  key: { type: 'string', default: 'remote_addr' },
  key_type: { type: 'string', enum: ['var', 'var_combination', 'constant'], default: 'var' },
  rejected_code: { type: 'integer', minimum: 200, maximum: 599, default: 503 },
  rejected_msg: { type: 'string', minLength: 1 },
  policy: { type: 'string', enum: ['local', 'redis', 'redis-cluster', 'redis-sentinel'], default: 'local' },
  allow_degradation: { type: 'boolean', default: false },
  show_limit_quota_header: { type: 'boolean', default: true },
  sync_interval: { type: 'number', default: NO_DELAYED_SYNC },
  // Switchyard extension: the prefix of every Redis key this plugin writes.
  redis_prefix: { type: 'string', minLength: 1, pattern: '^[0-9a-zA-Z|_:-]+$', default: 'plugin-limit-count' },
};

const schema: JsonObject = {
  type: 'object',
  properties,
  // APISIX says oneOf and then rewrites the "both" failure into its own message; anyOf + check() gives the same.
  anyOf: [{ required: ['count', 'time_window'] }, { required: ['rules'] }],
  ...policySchema(redisSingle, redisCluster, redisSentinel),
};

const metadataSchema: JsonObject = {
  type: 'object',
  properties: {
    limit_header: { type: 'string', default: 'X-RateLimit-Limit' },
    remaining_header: { type: 'string', default: 'X-RateLimit-Remaining' },
    reset_header: { type: 'string', default: 'X-RateLimit-Reset' },
  },
};

const POLICY_PROPS: Record<string, JsonObject> = {
  redis: redisSingle.properties as JsonObject,
  'redis-cluster': redisCluster.properties as JsonObject,
  'redis-sentinel': redisSentinel.properties as JsonObject,
};

// As APISIX: the first conf seen for a group (an LRU of 8 groups kept 5 minutes) is the one every route of the
// group must repeat, field by field over the schema's properties.
const GROUP_TTL_MS = 5 * 60_000;
const GROUP_ITEMS = 8;
const groupConfs = new Map<string, { readonly text: string; readonly at: number }>();

function groupText(conf: JsonObject): string {
  const fields = Object.keys(properties);
  const extra = POLICY_PROPS[conf.policy as string];
  if (extra !== undefined) fields.push(...Object.keys(extra));
  fields.sort();
  return JSON.stringify(fields.map((f) => [f, conf[f] ?? null]));
}

function checkGroup(conf: JsonObject, group: string): string | null {
  const text = groupText(conf);
  const now = Date.now();
  const prev = groupConfs.get(group);
  if (prev !== undefined && now - prev.at < GROUP_TTL_MS) {
    groupConfs.delete(group);
    groupConfs.set(group, prev);
    return prev.text === text ? null : 'group conf mismatched';
  }
  groupConfs.delete(group);
  groupConfs.set(group, { text, at: now });
  if (groupConfs.size > GROUP_ITEMS) groupConfs.delete(groupConfs.keys().next().value!);
  return null;
}

export const limitCountPlugin: PluginDef = {
  name: 'limit-count',
  version: '0.5',
  priority: 1002,
  schema,
  metadataSchema,
  encryptFields: ['redis_password', 'sentinel_password'],
  subsystems: ['http'],
  status: 'stable',
  check(conf, schemaType) {
    if (schemaType === 'metadata') return null;
    const hasCount = conf.count !== undefined || conf.time_window !== undefined;
    if (conf.rules !== undefined && hasCount) return 'count/time_window and rules cannot be specified at the same time';
    if (typeof conf.group === 'string' && conf.rules !== undefined) return 'group and rules cannot be specified at the same time';
    if (typeof conf.group === 'string') {
      const err = checkGroup(conf, conf.group);
      if (err !== null) return err;
    }
    const sync = conf.sync_interval;
    if (conf.policy !== 'local' && typeof sync === 'number' && sync !== NO_DELAYED_SYNC) {
      if (sync < 0.1) return 'sync_interval should not be smaller than 0.1';
      if (typeof conf.time_window === 'number' && sync >= conf.time_window) return 'sync_interval should be smaller than time_window';
    }
    const seen = new Set<string>();
    for (const r of (conf.rules as JsonObject[] | undefined) ?? []) {
      const key = r.key as string;
      if (seen.has(key)) return `duplicate key '${key}' in rules`;
      seen.add(key);
    }
    return null;
  },
  create(conf, env) {
    return new LimitCount(conf, env.scopeKey, env.metadata, env.logger);
  },
};

export default limitCountPlugin;
