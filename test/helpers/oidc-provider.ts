// A real OpenID Provider (npm oidc-provider) on a random loopback port, for openid-connect tests.
// - client `switchyard` (client_secret_basic) may use authorization_code, refresh_token and client_credentials;
// - client_credentials with `resource=<API_RESOURCE>` yields a JWT access token (RS256, verifiable with the
//   JWKS); without a resource it yields an opaque token (checked by introspection);
// - interactions are answered by a minimal handler that logs in the fixed account `alice` and grants the
//   requested scopes, so a test client that follows redirects completes the code flow without a form.
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import Provider, { type Configuration } from 'oidc-provider';

export const API_RESOURCE = 'urn:switchyard:api';
export const ACCOUNT = { sub: 'alice', email: 'alice@example.com', name: 'Alice Liddell' };

export interface TestOp {
  readonly issuer: string;
  readonly discovery: string;
  readonly clientId: string;
  readonly clientSecret: string;
  readonly provider: Provider;
  /** Requests the OP served, by path (discovery, token, introspection...). */
  readonly hits: Map<string, number>;
  /** Access token lifetime in seconds for the code flow (tests shorten it to exercise refresh). */
  setAccessTokenTtl(seconds: number): void;
  /** Lifetime of client_credentials tokens in seconds (tests shorten it to get expired tokens). */
  setClientCredentialsTtl(seconds: number): void;
  /** A client_credentials token: JWT with `resource`, opaque without. */
  clientCredentials(opts?: { resource?: boolean; scope?: string }): Promise<string>;
  close(): Promise<void>;
}

/**
 * `extraClients`: more registered clients, each allowed the authorization_code and refresh_token grants on
 * `redirectUris` (e.g. one authenticating with private_key_jwt and its `jwks`).
 */
export async function startOp(redirectUris: string[], postLogoutRedirectUris: string[] = [], extraClients: Record<string, unknown>[] = []): Promise<TestOp> {
  const clientId = 'switchyard';
  const clientSecret = 'op-client-secret-0123456789abcdef';
  const server = http.createServer();
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const port = (server.address() as AddressInfo).port;
  const issuer = `http://127.0.0.1:${port}`;
  let accessTtl = 3600;
  let ccTtl = 600;
  const config: Configuration = {
    clients: [
      {
        client_id: clientId,
        client_secret: clientSecret,
        grant_types: ['authorization_code', 'refresh_token', 'client_credentials'],
        response_types: ['code'],
        redirect_uris: redirectUris,
        post_logout_redirect_uris: postLogoutRedirectUris,
        scope: 'openid email profile offline_access read write',
      },
      ...extraClients.map((c) => ({
        grant_types: ['authorization_code', 'refresh_token'],
        response_types: ['code'],
        redirect_uris: redirectUris,
        scope: 'openid email profile offline_access',
        ...c,
      })),
    ] as Configuration['clients'],
    scopes: ['openid', 'email', 'profile', 'offline_access', 'read', 'write'],
    claims: { openid: ['sub'], email: ['email'], profile: ['name'] },
    findAccount: (_ctx: unknown, id: string) => ({
      accountId: id,
      claims: () => (id === ACCOUNT.sub ? { ...ACCOUNT } : { sub: id }),
    }),
    features: {
      devInteractions: { enabled: false },
      clientCredentials: { enabled: true },
      introspection: { enabled: true },
      revocation: { enabled: true },
      resourceIndicators: {
        enabled: true,
        defaultResource: (_ctx: unknown, _client: unknown, oneOf: string | undefined) => oneOf,
        useGrantedResource: () => false,
        getResourceServerInfo: (_ctx: unknown, resource: string) => {
          if (resource !== API_RESOURCE) throw new Error('unknown resource');
          return { scope: 'read write', audience: 'switchyard-api', accessTokenFormat: 'jwt', accessTokenTTL: ccTtl };
        },
      },
    },
    // Refresh tokens for the code flow without requiring the offline_access consent dance.
    issueRefreshToken: async (_ctx: unknown, client: { grantTypeAllowed(t: string): boolean }) => client.grantTypeAllowed('refresh_token'),
    ttl: {
      AccessToken: () => accessTtl,
      ClientCredentials: () => ccTtl,
      IdToken: 3600,
      Interaction: 600,
      Session: 3600,
      Grant: 3600,
      RefreshToken: 3600,
      AuthorizationCode: 60,
    },
    interactions: { url: (_ctx: unknown, interaction: { uid: string }) => `/interaction/${interaction.uid}` },
    pkce: { required: () => false },
    cookies: { keys: ['op-cookie-key-0123456789abcdef'] },
  };
  const provider = new Provider(issuer, config);
  const hits = new Map<string, number>();
  const callback = provider.callback();
  server.on('request', (req: http.IncomingMessage, res: http.ServerResponse) => {
    const path = (req.url ?? '/').split('?')[0]!;
    hits.set(path, (hits.get(path) ?? 0) + 1);
    if (path.startsWith('/interaction/')) {
      autoInteract(provider, req, res).catch((err: unknown) => {
        res.statusCode = 500;
        res.end(String(err));
      });
      return;
    }
    callback(req, res);
  });
  return {
    issuer,
    discovery: `${issuer}/.well-known/openid-configuration`,
    clientId,
    clientSecret,
    provider,
    hits,
    setAccessTokenTtl: (s) => {
      accessTtl = s;
    },
    setClientCredentialsTtl: (s) => {
      ccTtl = s;
    },
    clientCredentials: async (opts = {}) => {
      const body = new URLSearchParams({ grant_type: 'client_credentials', scope: opts.scope ?? 'read' });
      if (opts.resource !== false) body.set('resource', API_RESOURCE);
      const r = await fetch(`${issuer}/token`, {
        method: 'POST',
        headers: {
          authorization: 'Basic ' + Buffer.from(`${clientId}:${clientSecret}`).toString('base64'),
          'content-type': 'application/x-www-form-urlencoded',
        },
        body,
      });
      const json = (await r.json()) as { access_token?: string };
      if (!r.ok || json.access_token === undefined) throw new Error(`client_credentials failed: ${r.status} ${JSON.stringify(json)}`);
      return json.access_token;
    },
    close: () =>
      new Promise((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}

/** Logs in `alice` and grants every requested scope and claim, without any form. */
async function autoInteract(provider: Provider, req: http.IncomingMessage, res: http.ServerResponse): Promise<void> {
  const details = await provider.interactionDetails(req, res);
  if (details.prompt.name === 'login') {
    await provider.interactionFinished(req, res, { login: { accountId: ACCOUNT.sub } }, { mergeWithLastSubmission: false });
    return;
  }
  const clientId = String(details.params.client_id);
  const grant = details.grantId !== undefined
    ? await provider.Grant.find(details.grantId)
    : new provider.Grant({ accountId: String(details.session?.accountId), clientId });
  if (grant === undefined) throw new Error('grant vanished');
  const missing = details.prompt.details as { missingOIDCScope?: string[]; missingOIDCClaims?: string[] };
  if (missing.missingOIDCScope) grant.addOIDCScope(missing.missingOIDCScope.join(' '));
  if (missing.missingOIDCClaims) grant.addOIDCClaims(missing.missingOIDCClaims);
  const grantId = await grant.save();
  await provider.interactionFinished(req, res, { consent: { grantId } }, { mergeWithLastSubmission: true });
}
