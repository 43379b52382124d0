// llm_active_connections: one provider call is counted from the moment its request starts until its response
// has ended (the last streamed chunk), failed or been cancelled, as APISIX's ai-proxy counts around its call to
// the LLM service (exporter.inc_llm_active_connections before the request, dec once it is over). Labels are
// APISIX's for this gauge, read when the call starts; the decrement goes to the same series.
import { gatewayMetrics } from '../../../observability/metrics.ts';
import type { CounterChild } from '../../../observability/registry.ts';
import type { VarValue } from '../../../router/vars.ts';
import type { HttpContext } from '../../context.ts';
import { varToString } from '../../template.ts';
import type { AiState } from './state.ts';

/** APISIX caps client-supplied model names before they become label values (as the prometheus plugin). */
const MAX_MODEL_LABEL_LEN = 128;

function label(v: VarValue | undefined): string {
  return v === undefined || v === null ? '' : varToString(v);
}

function model(v: VarValue | undefined): string {
  const s = label(v);
  return s.length > MAX_MODEL_LABEL_LEN ? s.slice(0, MAX_MODEL_LABEL_LEN) : s;
}

/** One open provider call; end() is idempotent, so every way a call can finish may call it. */
export class ActiveLlmCall {
  #series: CounterChild | null;

  constructor(ctx: HttpContext, st: AiState) {
    const vars = ctx.vars;
    const serviceId = ctx.serviceId ?? '';
    this.#series = gatewayMetrics().llmActiveConnections.child([
      label(vars.get('route_name')), ctx.routeId, label(vars.get('matched_uri')), label(vars.get('matched_host')),
      serviceId === '' ? '' : label(vars.get('service_name')), serviceId, ctx.consumer?.username ?? '', label(vars.get('balancer_ip')),
      label(vars.get('request_type')) || (st.stream ? 'ai_stream' : 'ai_chat'), model(vars.get('request_llm_model')), model(vars.get('llm_model')),
    ]);
    this.#series.inc();
  }

  end(): void {
    this.#series?.inc(-1);
    this.#series = null;
  }
}
