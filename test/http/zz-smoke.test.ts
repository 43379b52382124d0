import { test, expect } from 'vitest';
import { startTestGateway } from '../helpers/gateway.ts';
import { startEcho } from '../helpers/upstream.ts';
test('smoke', async () => {
  const gw = await startTestGateway();
  const up = await startEcho('a');
  await gw.put('/routes/1', { uri: '/x/*', upstream: { nodes: { [up.addr]: 1 } } });
  const r = await fetch(gw.url + '/x/y');
  console.log(r.status, await r.text());
  await gw.close(); await up.close();
});
