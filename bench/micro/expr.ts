// Micro benchmark of the vars expression evaluator: ns per evalExpr for a few typical rules (route vars,
// traffic-split style nesting, regex, ipmatch, in), as the median CPU time of several batches.
// Run: `npx node bench/micro/expr.ts [--smoke]`.
import { fileURLToPath } from 'node:url';
import { compileExpr, evalExpr } from '../../src/router/expr.ts';
import type { CompiledExpr } from '../../src/router/expr.ts';
import { MapVars } from '../../src/router/vars.ts';

const vars = new MapVars({
  arg_name: 'json',
  arg_weight: '12',
  http_x_api_version: 'v2',
  http_user_agent: 'Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 Chrome/126.0 Safari/537.36',
  remote_addr: '192.168.10.20',
  request_method: 'POST',
  graphql_root_fields: ['repo', 'owner'],
});

const RULES: Record<string, unknown> = {
  eq_single: [['arg_name', '==', 'json']],
  and_numeric: [
    ['arg_name', '==', 'json'],
    ['arg_weight', '>', 10],
    ['arg_weight', '!', '>', 15],
  ],
  nested_or: [
    'OR',
    ['AND', ['http_x_api_version', '==', 'v1'], ['arg_name', '==', 'xml']],
    ['!AND', ['arg_weight', '<', 5], ['arg_name', '~=', 'json']],
  ],
  regex_caseless: [['http_user_agent', '~*', 'chrome/1[0-9]{2}']],
  ipmatch_cidrs: [['remote_addr', 'ipmatch', ['10.0.0.0/8', '172.16.0.0/12', '192.168.0.0/16', '::1']]],
  in_has: [['request_method', 'in', ['GET', 'POST', 'PUT']], ['graphql_root_fields', 'has', 'owner']],
};

function measure(expr: CompiledExpr, batches: number, perBatch: number): number {
  const samples: number[] = [];
  let sink = 0;
  for (let b = 0; b < batches; b++) {
    const start = process.cpuUsage();
    for (let k = 0; k < perBatch; k++) if (evalExpr(expr, vars)) sink++;
    const used = process.cpuUsage(start);
    samples.push(((used.user + used.system) * 1000) / perBatch);
  }
  if (sink === -1) console.log(sink);
  samples.sort((a, b) => a - b);
  return samples[samples.length >> 1];
}

export async function run(opts: { smoke: boolean }): Promise<Record<string, number>> {
  const batches = opts.smoke ? 3 : 9;
  const perBatch = opts.smoke ? 2_000 : 200_000;
  const result: Record<string, number> = {};
  for (const [name, rule] of Object.entries(RULES)) {
    const expr = compileExpr(rule);
    if (!evalExpr(expr, vars)) throw new Error(`bench rule ${name} should match`);
    result[`${name}_ns`] = Math.round(measure(expr, batches, perBatch) * 10) / 10;
  }
  return result;
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const result = await run({ smoke: process.argv.includes('--smoke') });
  for (const [k, v] of Object.entries(result)) console.log(`${k.padEnd(20)} ${v}`);
}
