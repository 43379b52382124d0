// A small HTTP receiver speaking HashiCorp Vault's KV v2 read API, for `$secret://vault/...` tests (no real Vault
// runs here). One KV v2 mount named `kv`: GET /v1/kv/data/<path> with an accepted X-Vault-Token answers the
// fields stored at <path> nested as Vault nests them (`data.data`, beside `data.metadata`); a missing or unknown
// token or a non-GET gets 403 `{"errors":["permission denied"]}` as Vault answers a bad token, and a path with
// nothing stored gets 404 `{"errors":[]}` as Vault answers a missing secret. Every request is recorded.
import http from 'node:http';
import type { AddressInfo } from 'node:net';

/** One request the receiver got: its URL and the Vault headers the gateway sent. */
export interface VaultKvRead {
  readonly url: string;
  readonly token: string | undefined;
  readonly namespace: string | undefined;
}

export interface VaultKv {
  /** http://127.0.0.1:<port>, the `uri` of a secrets/vault object (its prefix `kv/data/...`). */
  readonly url: string;
  /** KV v2 secrets by path under the mount `kv` (GET /v1/kv/data/<path>); change them at any time. */
  readonly data: Map<string, Record<string, string>>;
  /** Tokens accepted; anything else gets 403. */
  readonly tokens: Set<string>;
  /** Requests seen, in order (refused ones included). */
  readonly seen: VaultKvRead[];
  close(): Promise<void>;
}

const KV_V2_READ = /^\/v1\/kv\/data\/(.+)$/;

/** Starts the receiver on a random loopback port; `tokens` are accepted from the start. */
export async function startVaultKv(tokens: readonly string[] = []): Promise<VaultKv> {
  const data = new Map<string, Record<string, string>>();
  const accepted = new Set<string>(tokens);
  const seen: VaultKvRead[] = [];
  const server = http.createServer((req, res) => {
    const token = req.headers['x-vault-token'] as string | undefined;
    seen.push({ url: req.url ?? '', token, namespace: req.headers['x-vault-namespace'] as string | undefined });
    res.setHeader('content-type', 'application/json');
    if (req.method !== 'GET' || token === undefined || !accepted.has(token)) {
      res.writeHead(403).end(JSON.stringify({ errors: ['permission denied'] }));
      return;
    }
    const m = KV_V2_READ.exec(req.url ?? '');
    const fields = m ? data.get(m[1]!) : undefined;
    if (fields === undefined) {
      res.writeHead(404).end(JSON.stringify({ errors: [] }));
      return;
    }
    res.end(JSON.stringify({ request_id: 'r', lease_duration: 0, data: { data: fields, metadata: { version: 1, destroyed: false } } }));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    data,
    tokens: accepted,
    seen,
    close: () => new Promise<void>((resolve) => server.close(() => resolve())),
  };
}
