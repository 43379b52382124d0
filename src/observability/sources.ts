// What the metrics read at scrape time from other subsystems, registered by those subsystems themselves so
// the metrics module imports none of them: etcd config stores (reachability, modify indexes) and health
// managers (upstream node status). Registration returns its own undo.

export interface EtcdSource {
  /** One round trip to etcd (APISIX asks the server version per scrape); false when unreachable. */
  reachable(): Promise<boolean>;
  /** Max modifiedIndex per APISIX key (routes, services, ...) plus the store revision. */
  modifyIndexes(): { kinds: ReadonlyMap<string, number>; revision: number };
}

export interface HealthSource {
  /** Every active checker, named as APISIX names them (`/apisix/upstreams/1`, `/apisix/routes/1`). */
  list(): readonly { name: string; nodes: readonly { ip: string; port: number; status: string }[] }[];
}

export const etcdSources = new Set<EtcdSource>();
export const healthSources = new Set<HealthSource>();

export function registerEtcdSource(s: EtcdSource): () => void {
  etcdSources.add(s);
  return () => etcdSources.delete(s);
}

export function registerHealthSource(s: HealthSource): () => void {
  healthSources.add(s);
  return () => healthSources.delete(s);
}
