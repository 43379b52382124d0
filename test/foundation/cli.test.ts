// `switchyard version|validate|start` as a user runs them: exit codes, key paths of every error, ${{VAR}}
// substitution, and the admin key generated on first start.
import { execFile } from 'node:child_process';
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { parse, stringify } from 'yaml';
import { tempDir } from '../helpers/proc.ts';
import { REPO, admin, baseConfig, ports, runCli, startCli, writeConfig, killAll } from './cli-helpers.ts';

// Each test spawns the CLI (a cold Node start loading the TypeScript sources); generous on a loaded machine.
vi.setConfig({ testTimeout: 60_000 });

let dir: string;
let cleanup: () => Promise<void>;

beforeAll(async () => {
  ({ dir, cleanup } = await tempDir('swy-cli-'));
});
afterAll(async () => {
  await killAll();
  await cleanup();
});

async function file(name: string, text: string): Promise<string> {
  const f = path.join(dir, name);
  await writeFile(f, text);
  return f;
}

describe('switchyard version', () => {
  it('prints the package version', async () => {
    const pkg = JSON.parse(await readFile(new URL('../../package.json', import.meta.url), 'utf8')) as { version: string };
    const r = await runCli(['version']);
    expect(r.code).toBe(0);
    expect(r.stdout.trim()).toBe(pkg.version);
  });

  it('runs as `npx switchyard` from the project (package bin, pinned Node)', async () => {
    const r = await new Promise<{ code: number | null; stdout: string }>((resolve) => {
      execFile('npx', ['--no', 'switchyard', 'version'], { cwd: REPO, timeout: 30_000 }, (err, stdout) =>
        resolve({ code: err ? (typeof err.code === 'number' ? err.code : 1) : 0, stdout }),
      );
    });
    expect(r.code).toBe(0);
    expect(r.stdout.trim()).toMatch(/^\d+\.\d+\.\d+/);
  });
});

describe('switchyard validate', () => {
  it('accepts a good config and the shipped conf/config.yaml', async () => {
    const p = await ports();
    const sub = path.join(dir, 'good');
    await mkdir(sub);
    const f = await writeConfig(sub, baseConfig(p));
    const r = await runCli(['validate', '-c', f]);
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    expect(r.stdout).toContain('valid');
    const shipped = await runCli(['validate', '-c', 'conf/config.yaml']);
    expect(shipped.code, shipped.stderr).toBe(0);
  });

  it('reports every error with its key path and exits non-zero', async () => {
    const f = await file(
      'bad.yaml',
      [
        'apisix:',
        '  node_listen:',
        '    - "abc"',
        '  bogus_key: 1',
        '  proxy_mode: nope',
        '  stream_proxy:',
        '    tcp:',
        '      - addr: 9100',
        '        tlss: true',
        'deployment:',
        '  admin:',
        '    admin_listen:',
        '      port: "x"',
        '    admin_key:',
        '      - name: a',
        '        key: b',
        '        role: superuser',
        '  etcd:',
        '    host: 127.0.0.1:2379',
        'switchyard:',
        '  worker_processes: 0',
        '  limits:',
        '    max_header_size: big',
        'unknown_top: {}',
        '',
      ].join('\n'),
    );
    const r = await runCli(['validate', '-c', f]);
    expect(r.code).not.toBe(0);
    const lines = r.stderr.split('\n').filter((l) => l.startsWith('  - ')).map((l) => l.slice(4));
    const paths = lines.map((l) => l.split(': ')[0]);
    for (const p of [
      'apisix.node_listen[0]',
      'apisix.bogus_key',
      'apisix.proxy_mode',
      'apisix.stream_proxy.tcp[0].tlss',
      'deployment.admin.admin_listen.port',
      'deployment.admin.admin_key[0].role',
      'deployment.etcd.host',
      'switchyard.worker_processes',
      'switchyard.limits.max_header_size',
      'unknown_top',
    ]) {
      expect(paths, r.stderr).toContain(p);
    }
    // One line per key path: oneOf branches are merged, not listed one by one.
    expect(new Set(paths).size).toBe(paths.length);
    expect(lines.find((l) => l.startsWith('apisix.bogus_key:'))).toContain('unknown key');
    expect(lines.find((l) => l.startsWith('switchyard.worker_processes:'))).toContain('>= 1');
  });

  it('rejects a config that is not a mapping or not YAML', async () => {
    expect((await runCli(['validate', '-c', await file('list.yaml', '- 1\n- 2\n')])).code).not.toBe(0);
    const bad = await runCli(['validate', '-c', await file('broken.yaml', 'apisix: [\n')]);
    expect(bad.code).not.toBe(0);
    expect(bad.stderr).toContain('yaml');
    const missing = await runCli(['validate', '-c', path.join(dir, 'nope.yaml')]);
    expect(missing.code).not.toBe(0);
    expect(missing.stderr).toContain('cannot read');
  });

  it('checks the standalone file when the yaml provider is selected', async () => {
    const sub = path.join(dir, 'standalone');
    await mkdir(sub);
    const f = await writeConfig(sub, baseConfig(await ports(), 'yaml'));
    // No apisix.yaml yet: valid (starts empty).
    expect((await runCli(['validate', '-c', f])).code).toBe(0);
    const good = { routes: [{ id: 'r1', uri: '/a', upstream: { nodes: { '127.0.0.1:1980': 1 }, type: 'roundrobin' } }] };
    await writeFile(path.join(sub, 'apisix.yaml'), stringify(good) + '#END\n');
    expect((await runCli(['validate', '-c', f])).code).toBe(0);
    const bad = {
      routes: [
        ...good.routes,
        { id: 'r2', uri: 42, upstream: { nodes: { '127.0.0.1:1980': 1 }, type: 'roundrobin' } },
      ],
      upstreams: [{ id: 'u1', type: 'roundrobin', nodes: 'not-nodes' }],
    };
    await writeFile(path.join(sub, 'apisix.yaml'), stringify(bad) + '#END\n');
    const r = await runCli(['validate', '-c', f]);
    expect(r.code).not.toBe(0);
    expect(r.stderr).toContain('/apisix/routes/r2');
    expect(r.stderr).toContain('/apisix/upstreams/u1');
    expect(r.stderr).not.toContain('/apisix/routes/r1');
    // Without #END the file is rejected as a whole.
    await writeFile(path.join(sub, 'apisix.yaml'), stringify(good));
    const noEnd = await runCli(['validate', '-c', f]);
    expect(noEnd.code).not.toBe(0);
    expect(noEnd.stderr).toContain('#END');
  });

  it('substitutes ${{VAR}} and ${{VAR:=default}}; a missing variable is an error naming it', async () => {
    const text = [
      '# ${{NOT_SUBSTITUTED_IN_COMMENTS}}',
      'apisix:',
      '  node_listen:',
      '    - ${{SWY_T_PORT}}',
      '  status:',
      '    port: ${{SWY_T_STATUS:=7086}}',
      'deployment:',
      '  admin:',
      '    admin_listen:',
      '      port: ${{SWY_T_ADMIN}}',
      '',
    ].join('\n');
    const f = await file('env.yaml', text);
    const ok = await runCli(['validate', '-c', f], { SWY_T_PORT: '19999', SWY_T_ADMIN: '19998' });
    expect(ok.code, ok.stderr).toBe(0);
    // Substituted values are typed after substitution: a non-number port fails on its key path.
    const typed = await runCli(['validate', '-c', f], { SWY_T_PORT: '19999', SWY_T_ADMIN: 'abc' });
    expect(typed.code).not.toBe(0);
    expect(typed.stderr).toContain('deployment.admin.admin_listen.port');
    const missing = await runCli(['validate', '-c', f], { SWY_T_PORT: '19999' });
    expect(missing.code).not.toBe(0);
    expect(missing.stderr).toContain('SWY_T_ADMIN');
    expect(missing.stderr).not.toContain('SWY_T_STATUS');
  });

  it('rejects unknown commands and unknown options', async () => {
    expect((await runCli(['frobnicate'])).code).not.toBe(0);
    expect((await runCli([])).code).not.toBe(0);
    expect((await runCli(['validate', '--nope'])).code).not.toBe(0);
  });
});

describe('switchyard start: admin key', () => {
  it('generates a key on first start, persists it (comments kept), prints it once, and reuses it', async () => {
    const p = await ports();
    const sub = path.join(dir, 'keygen');
    await mkdir(sub);
    const conf = baseConfig(p);
    conf.deployment.admin.admin_key = [{ name: 'admin', key: '', role: 'admin' }];
    const f = path.join(sub, 'config.yaml');
    await writeFile(f, `# operator comment\n${stringify(conf)}# trailing comment\n`);

    const first = await startCli(f, p.status);
    const text = await readFile(f, 'utf8');
    expect(text).toContain('# operator comment');
    expect(text).toContain('# trailing comment');
    const key = (parse(text) as any).deployment.admin.admin_key[0].key as string;
    expect(key).toMatch(/^[A-Za-z]{32}$/);
    const stderr = first.peer.output();
    expect(stderr.split(key).length - 1).toBe(1);
    expect((await admin(p, 'GET', '/routes', undefined, key)).status).toBe(200);
    expect((await admin(p, 'GET', '/routes', undefined, 'wrong')).status).toBe(401);
    await first.peer.stop('SIGTERM');
    expect(await first.exited).toBe(0);

    const second = await startCli(f, p.status);
    expect(second.peer.output()).not.toContain('generated');
    expect((parse(await readFile(f, 'utf8')) as any).deployment.admin.admin_key[0].key).toBe(key);
    expect((await admin(p, 'GET', '/routes', undefined, key)).status).toBe(200);
    await second.peer.stop('SIGTERM');
    expect(await second.exited).toBe(0);
  }, 60_000);

  it('fails start-up on an invalid config with the key path', async () => {
    // node_listen: 9080 (a number) is valid, as in APISIX; a string that is not a port is not.
    const f = await file('bad-start.yaml', 'apisix:\n  node_listen: "not-a-port"\n');
    const r = await runCli(['start', '-c', f]);
    expect(r.code).not.toBe(0);
    expect(r.stderr).toContain('apisix.node_listen');
  });
});
