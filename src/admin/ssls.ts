// ssls: private keys never leave through the Admin API (`key`/`keys` stripped from every answer).
import type { JsonObject } from '../config/resources.ts';
import type { KindSpec } from './kind.ts';

export function hidePrivateKeys(value: JsonObject): JsonObject {
  if (value.key === undefined && value.keys === undefined) return value;
  const { key: _key, keys: _keys, ...rest } = value;
  return rest;
}

export const sslsSpec: KindSpec = {
  kind: 'ssls',
  unsupported: [],
  view: hidePrivateKeys,
};
