// How ai-proxy-multi asks ai-rate-limiting whether an instance still has budget (APISIX's
// check_instance_status) without importing it: ai-rate-limiting registers itself per request in rewrite, which
// runs before any access step.
import type { HttpContext } from '../../context.ts';

export interface InstanceGate {
  /** False when the instance's token budget is spent. */
  available(ctx: HttpContext, instance: string): boolean | Promise<boolean>;
}

export const GATE_KEY = 'ai-rate-limiting';

export function gateOf(ctx: HttpContext): InstanceGate | undefined {
  return ctx.pluginData.get(GATE_KEY) as InstanceGate | undefined;
}
