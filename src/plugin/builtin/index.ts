// Registers every builtin plugin (src/plugin/builtin/<name>.ts). One line per plugin; the composition root
// calls setupBuiltinPlugins once, then registry.setEnabled(...) from config.yaml.
import type { PluginDef } from '../plugin.ts';
import { DEFAULT_HTTP_PLUGINS, DEFAULT_STREAM_PLUGINS, type PluginRegistry } from '../registry.ts';
import { corsPlugin } from './cors.ts';
import { ipRestrictionPlugin } from './ip-restriction.ts';
import { limitConnPlugin } from './limit-conn.ts';
import { mqttProxyPlugin } from './mqtt-proxy.ts';
import { proxyRewritePlugin } from './proxy-rewrite.ts';
import { realIpPlugin } from './real-ip.ts';
import { redirectPlugin } from './redirect.ts';
import { requestIdPlugin } from './request-id.ts';
import { responseRewritePlugin } from './response-rewrite.ts';
import { keyAuthPlugin } from './key-auth.ts';
import { basicAuthPlugin } from './basic-auth.ts';
import { jwtAuthPlugin } from './jwt-auth.ts';
import { hmacAuthPlugin } from './hmac-auth.ts';
import { faultInjectionPlugin } from './fault-injection.ts';
import { mockingPlugin } from './mocking.ts';
import { proxyMirrorPlugin } from './proxy-mirror.ts';
import { clientControlPlugin } from './client-control.ts';
import { limitCountPlugin } from './limit-count.ts';
import { limitReqPlugin } from './limit-req.ts';
import { trafficSplitPlugin } from './traffic-split.ts';
import { apiBreakerPlugin } from './api-breaker.ts';
import { prometheusPlugin } from './prometheus.ts';
import { publicApiPlugin } from './public-api.ts';
import { httpLoggerPlugin } from './http-logger.ts';
import { tcpLoggerPlugin } from './tcp-logger.ts';
import { udpLoggerPlugin } from './udp-logger.ts';
import { syslogPlugin } from './syslog.ts';
import { fileLoggerPlugin } from './file-logger.ts';
import { consumerRestrictionPlugin } from './consumer-restriction.ts';
import { forwardAuthPlugin } from './forward-auth.ts';
import { uriBlockerPlugin } from './uri-blocker.ts';
import { refererRestrictionPlugin } from './referer-restriction.ts';
import { uaRestrictionPlugin } from './ua-restriction.ts';
import { csrfPlugin } from './csrf.ts';
import { requestValidationPlugin } from './request-validation.ts';
import { ldapAuthPlugin } from './ldap-auth.ts';
import { multiAuthPlugin } from './multi-auth.ts';
import { openidConnectPlugin } from './openid-connect.ts';
import { grpcTranscodePlugin } from './grpc-transcode.ts';
import { grpcWebPlugin } from './grpc-web.ts';
import { aiProxyPlugin } from './ai-proxy.ts';
import { aiProxyMultiPlugin } from './ai-proxy-multi.ts';
import { aiRateLimitingPlugin } from './ai-rate-limiting.ts';
import { aiPromptDecoratorPlugin } from './ai-prompt-decorator.ts';
import { aiPromptTemplatePlugin } from './ai-prompt-template.ts';
import { aiPromptGuardPlugin } from './ai-prompt-guard.ts';
import { aiRequestRewritePlugin } from './ai-request-rewrite.ts';
import { opentelemetryPlugin } from './opentelemetry.ts';
import { zipkinPlugin } from './zipkin.ts';
import { skywalkingPlugin } from './skywalking.ts';
import { skywalkingLoggerPlugin } from './skywalking-logger.ts';
import { clickhouseLoggerPlugin } from './clickhouse-logger.ts';
import { elasticsearchLoggerPlugin } from './elasticsearch-logger.ts';
import { splunkHecLoggingPlugin } from './splunk-hec-logging.ts';
import { lokiLoggerPlugin } from './loki-logger.ts';
import { dubboProxyPlugin } from './dubbo-proxy.ts';
import { httpDubboPlugin } from './http-dubbo.ts';

export const BUILTIN_PLUGINS: readonly PluginDef[] = [
  corsPlugin,
  ipRestrictionPlugin,
  limitConnPlugin,
  mqttProxyPlugin,
  proxyRewritePlugin,
  realIpPlugin,
  redirectPlugin,
  requestIdPlugin,
  responseRewritePlugin,
  keyAuthPlugin,
  basicAuthPlugin,
  jwtAuthPlugin,
  hmacAuthPlugin,
  faultInjectionPlugin,
  mockingPlugin,
  proxyMirrorPlugin,
  clientControlPlugin,
  limitCountPlugin,
  limitReqPlugin,
  trafficSplitPlugin,
  apiBreakerPlugin,
  prometheusPlugin,
  publicApiPlugin,
  httpLoggerPlugin,
  tcpLoggerPlugin,
  udpLoggerPlugin,
  syslogPlugin,
  fileLoggerPlugin,
  consumerRestrictionPlugin,
  forwardAuthPlugin,
  uriBlockerPlugin,
  refererRestrictionPlugin,
  uaRestrictionPlugin,
  csrfPlugin,
  requestValidationPlugin,
  ldapAuthPlugin,
  multiAuthPlugin,
  openidConnectPlugin,
  aiProxyPlugin,
  aiProxyMultiPlugin,
  aiRateLimitingPlugin,
  aiPromptDecoratorPlugin,
  aiPromptTemplatePlugin,
  aiPromptGuardPlugin,
  aiRequestRewritePlugin,
  opentelemetryPlugin,
  zipkinPlugin,
  skywalkingPlugin,
  skywalkingLoggerPlugin,
  clickhouseLoggerPlugin,
  elasticsearchLoggerPlugin,
  splunkHecLoggingPlugin,
  lokiLoggerPlugin,
  grpcTranscodePlugin,
  grpcWebPlugin,
  dubboProxyPlugin,
  httpDubboPlugin,
];

export function setupBuiltinPlugins(registry: PluginRegistry): void {
  for (const def of BUILTIN_PLUGINS) registry.register(def);
}

/**
 * Applies config.yaml `plugins` / `stream_plugins` (APISIX's default lists when absent). Names this build does
 * not ship are skipped, so an APISIX config.yaml listing plugins Switchyard lacks still starts; they are
 * returned for the caller to log.
 */
export function enablePlugins(registry: PluginRegistry, http?: readonly string[], stream?: readonly string[]): string[] {
  const h = http ?? DEFAULT_HTTP_PLUGINS;
  const s = stream ?? DEFAULT_STREAM_PLUGINS;
  registry.setEnabled(h, s, true);
  const missing: string[] = [];
  if (http !== undefined) for (const n of http) if (registry.get(n, 'http') === undefined) missing.push(n);
  if (stream !== undefined) for (const n of stream) if (registry.get(n, 'stream') === undefined) missing.push(`stream:${n}`);
  return missing;
}
