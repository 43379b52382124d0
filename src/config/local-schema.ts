// JSON Schema of config.yaml: APISIX 3.x keys (those Switchyard implements, plus accepted-and-ignored ones so an
// APISIX config loads) and Switchyard's own `switchyard:` section. Defaults live here and are applied on load.


const port = { type: 'integer', minimum: 1, maximum: 65535 };
const listenEntry = {
  oneOf: [
    port,
    {
      type: 'object',
      properties: { ip: { type: 'string' }, port, enable_http2: { type: 'boolean' } },
      required: ['port'],
      additionalProperties: false,
    },
  ],
};
const streamEntry = {
  oneOf: [
    port,
    { type: 'string', pattern: '^(\\S+:\\d+|\\d+|\\d+-\\d+)$' },
    {
      type: 'object',
      properties: {
        addr: { oneOf: [port, { type: 'string' }] },
        tls: { type: 'boolean' },
        proxy_protocol: { type: 'boolean' },
        proxy_protocol_to_upstream: { oneOf: [{ type: 'boolean' }, { enum: ['v1', 'v2'] }] },
      },
      required: ['addr'],
      additionalProperties: false,
    },
  ],
};
const ipPort = (ip: string, p: number) => ({
  type: 'object',
  properties: { ip: { type: 'string', default: ip }, port: { ...port, default: p } },
  additionalProperties: false,
  default: {},
});
const anyObject = { type: 'object' };
const aesKeyString = { type: 'string', anyOf: [{ minLength: 16, maxLength: 16 }, { minLength: 32, maxLength: 32 }] };

export const LOCAL_CONFIG_SCHEMA: Record<string, unknown> = {
  type: 'object',
  additionalProperties: false,
  properties: {
    apisix: {
      type: 'object',
      additionalProperties: false,
      default: {},
      properties: {
        // APISIX also takes a bare port (`node_listen: 9080`, as in its Docker examples); the loader turns it
        // into a one-entry list.
        node_listen: { oneOf: [port, { type: 'array', items: listenEntry }], default: [9080] },
        proxy_mode: { enum: ['http', 'stream', 'http&stream'], default: 'http' },
        stream_proxy: {
          type: 'object',
          additionalProperties: false,
          default: {},
          properties: {
            tcp: { type: 'array', items: streamEntry, default: [] },
            udp: { type: 'array', items: { oneOf: [port, { type: 'string' }] }, default: [] },
          },
        },
        enable_http2: { type: 'boolean', default: true },
        enable_admin: { type: 'boolean', default: true },
        enable_dev_mode: { type: 'boolean', default: false },
        enable_reuseport: { type: 'boolean' },
        match_uri_encoded_slash: { type: 'boolean' },
        max_post_args_readable_size: { type: 'integer', minimum: 0 },
        enable_resolv_search_opt: { type: 'boolean' },
        disable_sync_configuration_during_start: { type: 'boolean' },
        worker_startup_time_threshold: { type: 'number', minimum: 0 },
        lua_module_hook: { type: 'string', pattern: '^[a-zA-Z._-]+$' },
        enable_ipv6: { type: 'boolean', default: true },
        enable_server_tokens: { type: 'boolean', default: true },
        enable_control: { type: 'boolean', default: true },
        control: ipPort('127.0.0.1', 9090),
        status: ipPort('127.0.0.1', 7085),
        trusted_addresses: { type: 'array', items: { type: 'string' }, default: [] },
        show_upstream_status_in_response_header: { type: 'boolean', default: false },
        delete_uri_tail_slash: { type: 'boolean', default: false },
        normalize_uri_like_servlet: { type: 'boolean', default: false },
        disable_upstream_healthcheck: { type: 'boolean', default: false },
        dns_resolver: { type: 'array', items: { type: 'string' } },
        dns_resolver_valid: { type: 'integer', minimum: 0 },
        resolver_timeout: { type: 'number', minimum: 0, default: 5 },
        ssl: {
          type: 'object',
          default: {},
          properties: {
            enable: { type: 'boolean', default: true },
            listen: {
              type: 'array',
              items: {
                type: 'object',
                additionalProperties: false,
                // enable_http2 per entry as APISIX 3.0-3.8 took it (3.9+ only has apisix.enable_http2, which is
                // the fallback here).
                properties: { ip: { type: 'string' }, port, enable_http2: { type: 'boolean' }, enable_http3: { type: 'boolean' } },
              },
            },
            ssl_protocols: { type: 'string' },
            ssl_ciphers: { type: 'string' },
            ssl_session_tickets: { type: 'boolean' },
            fallback_sni: { type: 'string' },
            ssl_trusted_certificate: { type: 'string' },
            // Legacy (APISIX < 3.8) SSL key encryption keys; still tried when decrypting SSL keys.
            key_encrypt_salt: {
              oneOf: [
                { type: 'array', minItems: 1, items: { type: 'string', minLength: 16, maxLength: 16 } },
                { type: 'string', minLength: 16, maxLength: 16 },
              ],
            },
          },
          additionalProperties: false,
        },
        router: {
          type: 'object',
          additionalProperties: false,
          properties: {
            http: { enum: ['radixtree_host_uri', 'radixtree_uri', 'radixtree_uri_with_parameter'] },
            ssl: { enum: ['radixtree_sni'] },
          },
        },
        data_encryption: {
          type: 'object',
          additionalProperties: false,
          properties: {
            enable_encrypt_fields: { type: 'boolean' },
            // Each entry is an AES key and its IV: 16 characters (AES-128) or 32 (AES-256).
            keyring: { oneOf: [{ type: 'array', items: aesKeyString }, aesKeyString] },
          },
        },
        proxy_protocol: {
          type: 'object',
          additionalProperties: false,
          properties: {
            listen_http_port: port,
            listen_https_port: port,
            enable_tcp_pp: { type: 'boolean' },
            enable_tcp_pp_to_upstream: { type: 'boolean' },
          },
        },
        proxy_cache: anyObject,
        lru: anyObject,
        tracing: { type: 'boolean' },
        extra_lua_path: { type: 'string' },
        extra_lua_cpath: { type: 'string' },
      },
    },
    deployment: {
      type: 'object',
      additionalProperties: false,
      default: {},
      properties: {
        role: { enum: ['traditional', 'data_plane', 'control_plane'], default: 'traditional' },
        role_traditional: {
          type: 'object',
          additionalProperties: false,
          default: {},
          properties: { config_provider: { enum: ['etcd', 'yaml'], default: 'etcd' } },
        },
        role_data_plane: {
          type: 'object',
          additionalProperties: false,
          default: {},
          properties: { config_provider: { enum: ['etcd', 'yaml', 'json'], default: 'etcd' } },
        },
        role_control_plane: {
          type: 'object',
          additionalProperties: false,
          default: {},
          properties: { config_provider: { enum: ['etcd'], default: 'etcd' } },
        },
        etcd: {
          type: 'object',
          additionalProperties: false,
          default: {},
          properties: {
            host: { type: 'array', items: { type: 'string', pattern: '^https?://' }, minItems: 1, default: ['http://127.0.0.1:2379'] },
            prefix: { type: 'string', pattern: '^/[^/]', default: '/apisix' },
            timeout: { type: 'number', exclusiveMinimum: 0, default: 30 },
            watch_timeout: { type: 'number', exclusiveMinimum: 0, default: 50 },
            startup_retry: { type: 'integer', minimum: 0, default: 2 },
            resync_delay: { type: 'number', minimum: 0, default: 5 },
            health_check_timeout: { type: 'number', minimum: 0, default: 10 },
            user: { type: 'string' },
            password: { type: 'string' },
            tls: {
              type: 'object',
              additionalProperties: false,
              properties: {
                cert: { type: 'string' },
                key: { type: 'string' },
                verify: { type: 'boolean', default: true },
                sni: { type: 'string' },
              },
            },
          },
        },
        admin: {
          type: 'object',
          additionalProperties: false,
          default: {},
          properties: {
            admin_key: {
              type: 'array',
              default: [],
              items: {
                type: 'object',
                additionalProperties: false,
                required: ['name', 'key', 'role'],
                properties: {
                  name: { type: 'string' },
                  key: { type: 'string' },
                  role: { enum: ['admin', 'viewer'] },
                },
              },
            },
            admin_key_required: { type: 'boolean', default: true },
            allow_admin: { type: 'array', items: { type: 'string' }, default: ['127.0.0.0/24'] },
            admin_listen: ipPort('127.0.0.1', 9180),
            enable_admin_cors: { type: 'boolean', default: true },
            enable_admin_ui: { type: 'boolean', default: true },
            admin_api_version: { enum: ['v3'], default: 'v3' },
            https_admin: { type: 'boolean' },
            admin_api_mtls: anyObject,
          },
        },
        config_provider: { type: 'string' },
      },
    },
    switchyard: {
      type: 'object',
      additionalProperties: false,
      default: {},
      properties: {
        worker_processes: { oneOf: [{ const: 'auto' }, { type: 'integer', minimum: 1, maximum: 256 }], default: 'auto' },
        // HTTP/1.1 downstream: the socket-level engine (protocols/http1), or node:http. SWITCHYARD_HTTP1_ENGINE overrides.
        http1_engine: { enum: ['node', 'socket'], default: 'socket' },
        // HTTP/1.1 to upstreams: the socket-level client (src/upstream/h1), or undici. SWITCHYARD_UPSTREAM_CLIENT overrides.
        upstream_http1_client: { enum: ['undici', 'socket'], default: 'socket' },
        standalone_file: { type: 'string' },
        limits: {
          type: 'object',
          additionalProperties: false,
          default: {},
          properties: {
            max_header_size: { type: 'integer', minimum: 1024, default: 32768 },
            max_headers_count: { type: 'integer', minimum: 8, default: 200 },
            client_max_body_size: { type: 'integer', minimum: 0, default: 0 },
            client_header_timeout: { type: 'number', exclusiveMinimum: 0, default: 60 },
            client_body_timeout: { type: 'number', exclusiveMinimum: 0, default: 60 },
            keepalive_timeout: { type: 'number', exclusiveMinimum: 0, default: 60 },
            graceful_shutdown_timeout: { type: 'number', exclusiveMinimum: 0, default: 30 },
          },
        },
        access_log: {
          type: 'object',
          additionalProperties: false,
          default: {},
          properties: {
            enable: { type: 'boolean', default: true },
            path: { type: 'string', minLength: 1, default: 'stdout' },
            // An nginx log_format string (APISIX nginx_config.http.access_log_format); absent: JSON lines.
            // Every `${` must close on a variable name (src/pipeline/access-log-format.ts compiles it).
            format: { type: 'string', minLength: 1, pattern: '^(?:[^$]|\\$(?!\\{)|\\$\\{[A-Za-z0-9_]+\\})*$' },
            format_escape: { enum: ['default', 'json', 'none'], default: 'default' },
            // Bytes gathered before a write (APISIX nginx_config.http.access_log_buffer); 0: a write per line.
            // Unset: 16384, or 0 on a terminal (src/pipeline/access-log.ts).
            buffer: { type: 'integer', minimum: 0, maximum: 8388608 },
          },
        },
      },
    },
    plugins: { type: 'array', items: { type: 'string' }, uniqueItems: true },
    stream_plugins: { type: 'array', items: { type: 'string' }, uniqueItems: true },
    plugin_attr: { type: 'object', default: {} },
    nginx_config: anyObject,
    discovery: {
      type: 'object',
      additionalProperties: false,
      // APISIX's discovery modules (apisix/discovery/*); only dns is implemented, the others load with a
      // warning (see local-compat.ts).
      properties: Object.fromEntries(['dns', 'consul', 'consul_kv', 'eureka', 'nacos', 'kubernetes', 'tars'].map((k) => [k, anyObject])),
    },
    graphql: anyObject,
    wasm: anyObject,
    'ext-plugin': anyObject,
    xrpc: anyObject,
  },
};
