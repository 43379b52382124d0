// The upstreams of a snapshot under the keys the runtimes use: `upstreams/<id>`, and inline upstreams keyed
// by their owner (`services/<id>`, `routes/<id>`, `stream_routes/<id>`).
import type { JsonObject } from '../config/resources.ts';
import type { Snapshot } from '../config/snapshot.ts';

const INLINE_OWNERS = ['services', 'routes', 'stream_routes'] as const;

function asObj(v: unknown): JsonObject | undefined {
  return v !== null && typeof v === 'object' && !Array.isArray(v) ? (v as JsonObject) : undefined;
}

export function upstreamConfs(snapshot: Snapshot): [string, JsonObject][] {
  const out: [string, JsonObject][] = [];
  for (const u of snapshot.list('upstreams')) out.push([`upstreams/${u.item.id}`, u.value]);
  for (const kind of INLINE_OWNERS) {
    for (const r of snapshot.list(kind)) {
      const inline = asObj(r.value.upstream);
      if (inline !== undefined) out.push([`${kind}/${r.item.id}`, inline]);
    }
  }
  return out;
}
