// plugin_metadata (`/plugin_metadata/{plugin}`): no POST/PATCH, no timestamps; stored with `id` = the plugin
// name (the validator checks the plugin is enabled and applies its metadata schema).
import type { KindSpec } from './kind.ts';

export const pluginMetadataSpec: KindSpec = {
  kind: 'plugin_metadata',
  unsupported: ['POST', 'PATCH'],
  timestamps: false,
  assignId: (target, value) => {
    if (target.id === undefined) return { error: 'missing plugin name' };
    value.id = target.id;
    return { storeId: target.id };
  },
};
