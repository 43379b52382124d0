// RuntimeManager: coalesced rebuilds, builders skipped when their kinds did not change, retirement of
// replaced runtimes with their successor, full rebuilds on refresh().
import { afterEach, describe, expect, it } from 'vitest';
import type { Kind } from '../../src/config/resources.ts';
import type { Snapshot } from '../../src/config/snapshot.ts';
import { silentLogger } from '../../src/observability/logger.ts';
import { RuntimeManager, type RuntimeBuilder } from '../../src/runtime/manager.ts';
import type { HttpRuntime } from '../../src/runtime/types.ts';
import type { HttpRuntimeBuilder } from '../../src/runtime/http-runtime.ts';
import { waitFor } from '../helpers/proc.ts';
import { Config, MemoryStore, makeBuilder, makeRegistry, routeAt, upstream, type TrackerInstance } from './helpers.ts';

interface Built {
  readonly revision: number;
  readonly previous: Built | null;
}

class CountingBuilder implements RuntimeBuilder<Built> {
  readonly name = 'counting';
  readonly kinds: readonly Kind[];
  builds = 0;
  readonly retired: [Built, Built][] = [];
  constructor(kinds: readonly Kind[]) {
    this.kinds = kinds;
  }
  build(snapshot: Snapshot, previous: Built | null): Built {
    this.builds++;
    return { revision: snapshot.revision, previous };
  }
  retire(runtime: Built, next: Built): void {
    this.retired.push([runtime, next]);
  }
}

const managers: RuntimeManager[] = [];
const builders: HttpRuntimeBuilder[] = [];

afterEach(async () => {
  for (const m of managers.splice(0)) m.stop();
  for (const b of builders.splice(0)) await b.close();
});

function setup(retireAfterMs = 0) {
  const { plugins, tracker } = makeRegistry();
  const store = new MemoryStore(new Config(plugins));
  const manager = new RuntimeManager(store.asStore(), plugins, silentLogger, { retireAfterMs });
  managers.push(manager);
  const http = makeBuilder(plugins);
  builders.push(http);
  const getHttp = manager.add<HttpRuntime>(http);
  const stream = new CountingBuilder(['upstreams', 'services', 'ssls', 'stream_routes', 'plugin_metadata']);
  const getStream = manager.add(stream);
  const swaps: number[] = [];
  manager.on('swap', (rev: number) => swaps.push(rev));
  return { store, manager, getHttp, stream, getStream, swaps, tracker };
}

async function swapped(swaps: number[], revision: number): Promise<void> {
  await waitFor(() => swaps.includes(revision), 5000, 5);
}

describe('RuntimeManager', () => {
  it('coalesces a burst of writes into one rebuild', async () => {
    const { store, manager, swaps, getHttp } = setup();
    manager.start();
    const before = swaps.length;
    for (let i = 0; i < 5; i++) store.put('routes', `r${i}`, { uri: `/r${i}`, upstream: upstream(9001) });
    await swapped(swaps, store.revision);
    expect(swaps.length - before).toBe(1);
    expect(getHttp()?.router.size).toBe(5);
  });

  it('skips builders none of whose kinds changed', async () => {
    const { store, manager, swaps, getHttp, stream, getStream } = setup();
    manager.start();
    const first = getStream();
    expect(stream.builds).toBe(1);

    store.put('routes', 'r', { uri: '/r', upstream: upstream(9001) });
    await swapped(swaps, store.revision);
    expect(stream.builds).toBe(1);
    expect(getStream()).toBe(first);
    const http = getHttp();

    store.put('stream_routes', 's', { server_port: 9100, upstream: upstream(9001) });
    await swapped(swaps, store.revision);
    expect(stream.builds).toBe(2);
    expect(getStream()?.previous).toBe(first);
    // stream_routes are not an HTTP kind: the HTTP runtime is kept.
    expect(getHttp()).toBe(http);

    store.put('upstreams', 'u', upstream(9002));
    await swapped(swaps, store.revision);
    expect(stream.builds).toBe(3);
    expect(getHttp()).not.toBe(http);
  });

  it('retires each replaced runtime with its successor after the grace period', async () => {
    const { store, manager, swaps, stream, getHttp, tracker } = setup(20);
    manager.start();
    store.put('routes', 'gone', { uri: '/gone', plugins: { tracker: { tag: 'gone' } }, upstream: upstream(9001) });
    store.put('routes', 'keep', { uri: '/keep', plugins: { tracker: { tag: 'keep' } }, upstream: upstream(9001) });
    await swapped(swaps, store.revision);
    store.delete('routes', 'gone');
    store.put('upstreams', 'u', upstream(9002));
    await swapped(swaps, store.revision);
    const gone = tracker.created.find((t) => t.tag === 'gone') as TrackerInstance;
    const keep = tracker.created.find((t) => t.tag === 'keep') as TrackerInstance;
    await waitFor(() => gone.destroyed === 1, 5000, 5);
    await waitFor(() => stream.retired.length === 1, 5000, 5);
    expect(stream.retired[0]![1].previous).toBe(stream.retired[0]![0]);
    expect(keep.destroyed).toBe(0);
    expect(routeAt(getHttp()!, '/keep')).not.toBeNull();
  });

  it('refresh() rebuilds everything without reuse and retires the old chains', async () => {
    const { store, manager, swaps, getHttp, stream, tracker } = setup(10);
    manager.start();
    store.put('routes', 'r', { uri: '/r', plugins: { tracker: { tag: 'r' } }, upstream: upstream(9001) });
    await swapped(swaps, store.revision);
    const before = routeAt(getHttp()!, '/r');
    const count = swaps.length;
    manager.refresh();
    await waitFor(() => swaps.length > count, 5000, 5);
    const after = routeAt(getHttp()!, '/r');
    expect(after).not.toBe(before);
    expect(after?.chain).not.toBe(before?.chain);
    expect(stream.builds).toBe(2);
    const instances = tracker.created.filter((t) => t.tag === 'r');
    expect(instances.length).toBe(2);
    await waitFor(() => instances[0]!.destroyed === 1, 5000, 5);
    expect(instances[1]!.destroyed).toBe(0);
  });
});
