// Duplicate auth keys across consumers and credentials are refused (APISIX consumers.lua / credentials.lua):
// two consumers sharing a key-auth key would make authentication ambiguous.
import type { Json } from '../config/resources.ts';
import type { AdminContext } from './kind.ts';
import { isObject } from './patch.ts';

/** The field that identifies a consumer, per auth plugin. */
const KEY_FIELDS: Readonly<Record<string, string>> = {
  'key-auth': 'key',
  'basic-auth': 'username',
  'jwt-auth': 'key',
  'hmac-auth': 'key_id',
};

function ownerOfCredential(storeId: string): string {
  return storeId.slice(0, storeId.indexOf('/'));
}

/** `duplicate key found with consumer: <name>` when another consumer already holds one of these keys. */
export async function duplicateAuthKey(ctx: AdminContext, owner: string, plugins: Json | undefined): Promise<string | null> {
  if (!isObject(plugins)) return null;
  const wanted: [string, string, Json][] = [];
  for (const [name, conf] of Object.entries(plugins)) {
    const field = KEY_FIELDS[name];
    if (field === undefined || !isObject(conf)) continue;
    const v = conf[field];
    if (v !== undefined && v !== null) wanted.push([name, field, v]);
  }
  if (wanted.length === 0) return null;
  const holders: [string, Json | undefined][] = [];
  for (const c of await ctx.store.fetchList('consumers')) holders.push([c.id, c.value.plugins]);
  for (const c of await ctx.store.fetchList('credentials')) holders.push([ownerOfCredential(c.id), c.value.plugins]);
  for (const [holder, hp] of holders) {
    if (holder === owner || !isObject(hp)) continue;
    for (const [name, field, v] of wanted) {
      const conf = hp[name];
      if (isObject(conf) && conf[field] === v) return `duplicate key found with consumer: ${holder}`;
    }
  }
  return null;
}
