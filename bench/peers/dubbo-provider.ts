// Dubbo 2 provider of the dubbo bench scenario (the hessian.js test provider, nothing recorded per call):
// BenchService.echo(String) returns its argument; hello(Map) answers the Map dubbo-proxy expects.
// `node bench/peers/dubbo-provider.ts <port>`
import { startDubboProvider } from '../../test/helpers/dubbo-provider.ts';

const BENCH_SERVICE = 'org.apache.dubbo.bench.BenchService';

const port = Number(process.argv[2]);
if (!(port > 0)) {
  console.error('usage: dubbo-provider.ts <port>');
  process.exit(2);
}
const OK = { $class: 'java.util.HashMap', $: { status: '200', body: 'ok' } };
await startDubboProvider({ [BENCH_SERVICE]: { echo: ([v]) => v, hello: () => OK } }, 'bench', port, false);
console.log(`dubbo provider on ${port}`);
