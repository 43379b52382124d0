// Compiles every resource-kind schema and every enabled plugin's schemas once at start-up. ajv compiles a
// schema on its first use, which costs 100-300 ms for the route schema alone: without this, the first config
// write after a start is that much slower to reach the data plane on every node (measured on a 3-node cluster,
// test/cluster). Config time, not request time.
import { compileSchema } from './compile.ts';
import { KIND_RULES } from './kinds.ts';
import { pluginSchemaFor, type PluginSchemaDef } from './plugins.ts';

export function precompileSchemas(plugins: readonly { name: string; def: PluginSchemaDef }[]): number {
  let n = 0;
  for (const rule of Object.values(KIND_RULES)) {
    compileSchema(rule.shape);
    n++;
  }
  for (const { name, def } of plugins) {
    for (const t of ['route', 'consumer', 'metadata'] as const) {
      if (t === 'consumer' && def.consumerSchema === undefined) continue;
      if (t === 'metadata' && def.metadataSchema === undefined) continue;
      const s = pluginSchemaFor(def, name, t);
      if (typeof s === 'string') continue;
      compileSchema(s);
      n++;
    }
  }
  return n;
}
