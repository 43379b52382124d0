// `switchyard validate` for the standalone file: the file's own format, then every object against its schema
// (the same validation the gateway applies when loading), reported with the object's key.
import type { LocalConfig } from './local.ts';
import { itemKey, type StoredItem } from './resources.ts';
import { buildSnapshot } from './snapshot.ts';
import { parseStandalone } from './standalone-format.ts';
import { PluginRegistry } from '../plugin/registry.ts';
import { enablePlugins, setupBuiltinPlugins } from '../plugin/builtin/index.ts';
import { checkExpr } from '../router/expr.ts';

export function validateStandaloneFile(text: string, fileName: string, conf: LocalConfig): string[] {
  const parsed = parseStandalone(text, fileName);
  if (!parsed.ok) return [parsed.error];
  const plugins = new PluginRegistry();
  setupBuiltinPlugins(plugins);
  enablePlugins(plugins, conf.plugins, conf.stream_plugins);
  const prefix = '/apisix';
  const items: StoredItem[] = parsed.items.map((it, i) => ({
    kind: it.kind,
    id: it.id,
    key: itemKey(prefix, it.kind, it.id),
    value: it.value,
    createdIndex: i + 1,
    modifiedIndex: i + 1,
  }));
  const snap = buildSnapshot(items, items.length, { plugins, compileVars: checkExpr });
  return snap.errors.map((e) => `${e.key}: ${e.message}`);
}
