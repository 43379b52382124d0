// Secret manager schemas (apisix/secret/{vault,aws,gcp}.lua), keyed by manager name. A secret is stored at
// `secrets/<manager>/<id>`; the manager part of its id selects the schema.
import type { JsonObject } from '../config/resources.ts';
import { uriDef } from './defs.ts';

const vault: JsonObject = {
  type: 'object',
  properties: {
    uri: uriDef,
    prefix: { type: 'string' },
    token: { type: 'string' },
    namespace: { type: 'string' },
  },
  required: ['uri', 'prefix', 'token'],
};

const aws: JsonObject = {
  type: 'object',
  properties: {
    access_key_id: { type: 'string' },
    secret_access_key: { type: 'string' },
    session_token: { type: 'string' },
    region: { type: 'string', default: 'us-east-1' },
    endpoint_url: uriDef,
  },
  required: ['access_key_id', 'secret_access_key'],
};

const gcp: JsonObject = {
  type: 'object',
  properties: {
    auth_config: {
      type: 'object',
      properties: {
        client_email: { type: 'string' },
        private_key: { type: 'string' },
        project_id: { type: 'string' },
        token_uri: { type: 'string', default: 'https://oauth2.googleapis.com/token' },
        scopes: { type: 'string', default: 'https://www.googleapis.com/auth/cloud-platform' },
        entries_uri: { type: 'string', default: 'https://secretmanager.googleapis.com/v1/' },
      },
      required: ['client_email', 'private_key', 'project_id', 'token_uri'],
    },
    ssl_verify: { type: 'boolean', default: true },
    auth_file: { type: 'string' },
  },
  oneOf: [{ required: ['auth_config'] }, { required: ['auth_file'] }],
};

export const SECRET_SCHEMAS: Readonly<Record<string, JsonObject>> = { vault, aws, gcp };

/** The manager of a stored secret id (`vault/1` -> `vault`), or undefined when the id has no manager part. */
export function secretManagerOf(id: string): string | undefined {
  const slash = id.indexOf('/');
  return slash > 0 ? id.slice(0, slash) : undefined;
}

/** What GET /schema/secret describes: one of the manager schemas, chosen by the id's manager part. */
export const secretShape: JsonObject = {
  type: 'object',
  description: 'validated by the schema of the secret manager named by the id prefix (vault, aws, gcp)',
  anyOf: [vault, aws, gcp],
};
