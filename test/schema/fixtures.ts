// Plugin definitions shaped like APISIX's (a subset of their schemas) and sample objects from the APISIX docs.
import type { JsonObject } from '../../src/config/resources.ts';
import type { PluginSchemaDef, PluginSchemaSource } from '../../src/schema/validator.ts';

const limitCount: PluginSchemaDef = {
  schema: {
    type: 'object',
    properties: {
      count: { type: 'integer', exclusiveMinimum: 0 },
      time_window: { type: 'integer', exclusiveMinimum: 0 },
      key: { type: 'string', default: 'remote_addr' },
      rejected_code: { type: 'integer', minimum: 200, maximum: 599, default: 503 },
      policy: { type: 'string', enum: ['local', 'redis', 'redis-cluster'], default: 'local' },
    },
    required: ['count', 'time_window'],
  },
};

const keyAuth: PluginSchemaDef = {
  type: 'auth',
  schema: {
    type: 'object',
    properties: { header: { type: 'string', default: 'apikey' }, hide_credentials: { type: 'boolean', default: false } },
  },
  consumerSchema: {
    type: 'object',
    properties: { key: { type: 'string' } },
    required: ['key'],
  },
};

const proxyRewrite: PluginSchemaDef = {
  schema: {
    type: 'object',
    properties: {
      uri: { type: 'string', minLength: 1, maxLength: 4096 },
      host: { type: 'string' },
      method: { type: 'string', enum: ['GET', 'POST', 'PUT'] },
    },
    additionalProperties: false,
  },
  check(conf) {
    return conf.uri === '/forbidden' ? 'uri /forbidden is reserved' : null;
  },
};

const prometheus: PluginSchemaDef = {
  schema: { type: 'object', properties: { prefer_name: { type: 'boolean', default: false } } },
};

const httpLogger: PluginSchemaDef = {
  schema: { type: 'object', properties: { uri: { type: 'string' } }, required: ['uri'] },
  metadataSchema: {
    type: 'object',
    properties: { log_format: { type: 'object' }, max_pending_entries: { type: 'integer', minimum: 1 } },
    additionalProperties: false,
  },
};

const mqttProxy: PluginSchemaDef = {
  schema: {
    type: 'object',
    properties: { protocol_name: { type: 'string' }, protocol_level: { type: 'integer' } },
    required: ['protocol_name', 'protocol_level'],
  },
};

const HTTP: Record<string, PluginSchemaDef> = {
  'limit-count': limitCount,
  'key-auth': keyAuth,
  'proxy-rewrite': proxyRewrite,
  prometheus,
  'http-logger': httpLogger,
};
const STREAM: Record<string, PluginSchemaDef> = { 'mqtt-proxy': mqttProxy, 'limit-conn': prometheus };

export const plugins: PluginSchemaSource = {
  get: (name, subsystem) => (subsystem === 'stream' ? STREAM[name] : HTTP[name]),
};

/** A test expression compiler: arrays of arrays are valid, anything else is not. */
export function compileVars(v: unknown): string | null {
  if (!Array.isArray(v)) return 'rule should be wrapped inside brackets';
  for (const leaf of v) if (!Array.isArray(leaf)) return 'rule should be wrapped inside brackets';
  return null;
}

// A real self-signed P-256 pair (openssl req -x509, CN=test.com, 100 years): SSL validation parses PEM.
export const CERT = `-----BEGIN CERTIFICATE-----
MIIBfDCCASOgAwIBAgIUDPB3LpZn2t49arnDg9EhlkXw2ZIwCgYIKoZIzj0EAwIw
EzERMA8GA1UEAwwIdGVzdC5jb20wIBcNMjYxMjA2MTkyOTM1WhgPMjEyNjExMTIx
OTI5MzVaMBMxETAPBgNVBAMMCHRlc3QuY29tMFkwEwYHKoZIzj0CAQYIKoZIzj0D
AQcDQgAERWHShRcH5oC9KYerdnHn7UXF4blGMD+pIagRxURstAO4oG2GmitElSBe
vKdsJUb9AxeRVQdaVq4oDVmoQ2WEsqNTMFEwHQYDVR0OBBYEFLAJ1dg7D++f5p11
FZ+QS3RCimz6MB8GA1UdIwQYMBaAFLAJ1dg7D++f5p11FZ+QS3RCimz6MA8GA1Ud
EwEB/wQFMAMBAf8wCgYIKoZIzj0EAwIDRwAwRAIgKgkjq4I0ZlNTODyKd9Yrordl
5PcmZT7fk5oHiBpwL1ACIEkFNmf1dU2OVndsj/dt0OxtGGWjlFK6Xp89Z6gtqLZQ
-----END CERTIFICATE-----`;
export const KEY = `-----BEGIN PRIVATE KEY-----
MIGHAgEAMBMGByqGSM49AgEGCCqGSM49AwEHBG0wawIBAQQgwZ0DDSjmDBG2bKWX
s/cvWQWH+cDL/UWk/9Q7g+2Idw6hRANCAARFYdKFFwfmgL0ph6t2ceftRcXhuUYw
P6khqBHFRGy0A7igbYaaK0SVIF68p2wlRv0DF5FVB1pWrigNWahDZYSy
-----END PRIVATE KEY-----`;

export function deepFreeze<T>(v: T): T {
  if (typeof v === 'object' && v !== null) {
    for (const k of Object.keys(v)) deepFreeze((v as Record<string, unknown>)[k]);
    Object.freeze(v);
  }
  return v;
}

export const upstreamSample = (): JsonObject => ({ type: 'roundrobin', nodes: { '127.0.0.1:1980': 1 } });
