// Registry of Admin API resource kinds by URL name. Adding a kind = one spec file + one line here.
import type { KindSpec } from './kind.ts';
import { consumerGroupsSpec } from './consumer-groups.ts';
import { consumersSpec } from './consumers.ts';
import { credentialsSpec } from './credentials.ts';
import { globalRulesSpec } from './global-rules.ts';
import { pluginConfigsSpec } from './plugin-configs.ts';
import { pluginMetadataSpec } from './plugin-metadata.ts';
import { protosSpec } from './protos.ts';
import { routesSpec } from './routes.ts';
import { secretsSpec } from './secrets.ts';
import { servicesSpec } from './services.ts';
import { sslsSpec } from './ssls.ts';
import { streamRoutesSpec } from './stream-routes.ts';
import { upstreamsSpec } from './upstreams.ts';

const SPECS: readonly KindSpec[] = [
  routesSpec,
  servicesSpec,
  upstreamsSpec,
  consumersSpec,
  credentialsSpec,
  consumerGroupsSpec,
  sslsSpec,
  globalRulesSpec,
  pluginConfigsSpec,
  pluginMetadataSpec,
  streamRoutesSpec,
  protosSpec,
  secretsSpec,
];

/** URL resource name (`routes`, `ssls`, ...) -> spec. Credentials are reached through `consumers/{u}/credentials`. */
export const KIND_SPECS: ReadonlyMap<string, KindSpec> = new Map(
  SPECS.filter((s) => s.kind !== 'credentials').map((s) => [s.kind, s]),
);

export function specOf(kind: KindSpec['kind']): KindSpec {
  const spec = SPECS.find((s) => s.kind === kind);
  if (!spec) throw new Error(`no admin spec for kind ${kind}`);
  return spec;
}
