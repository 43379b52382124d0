// APISIX's access_log_format (nginx log_format syntax) checked against nginx itself: the same format string,
// the same raw requests sent to a real nginx reverse proxy and to the gateway, in front of the same upstream;
// the lines must be equal once the fields that differ by nature (time, durations, the proxy's own upstream
// port) are masked. Both escape modes (default, json). Then the parts nginx has no twin for: credential
// redaction in $request, the config.yaml mapping from nginx_config.http, and the TTY default.
import { readFile, writeFile } from 'node:fs/promises';
import net from 'node:net';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { parseLocalConfig } from '../../src/config/local.ts';
import { accessLogOptions } from '../../src/pipeline/access-log.ts';
import { APISIX_ACCESS_LOG_FORMAT } from '../../src/pipeline/access-log-format.ts';
import { startTestGateway, type TestGateway } from '../helpers/gateway.ts';
import { rawRequest } from '../helpers/nginx.ts';
import { freePort } from '../helpers/ports.ts';
import { startPeer, tempDir, waitFor, type Peer } from '../helpers/proc.ts';
import { startEcho, type EchoServer } from '../helpers/upstream.ts';

// Variables both sides define the same way. $request_time/$upstream_response_time/$time_local are compared
// by shape only (masked below).
const FORMAT =
  '$remote_addr - $remote_user [$time_local] "$request" $status $body_bytes_sent "$http_referer" ' +
  '"$http_user_agent" $http_x_note $args $request_method $server_protocol $upstream_status ${request_time}s ' +
  '$upstream_response_time';

let dir: string;
let cleanup: () => Promise<void>;
let up: EchoServer;
let nginx: Peer;
let nginxPort: number;
const gws: Record<'default' | 'json', TestGateway> = {} as Record<'default' | 'json', TestGateway>;

async function startNginx(): Promise<void> {
  nginxPort = await freePort();
  const t = (n: string): string => `${n}_temp_path ${dir}/tmp-${n};`;
  const user = process.getuid?.() === 0 ? 'user root;\n' : '';
  const fmt = FORMAT.replaceAll("'", "\\'");
  const conf =
    `${user}daemon off;\nmaster_process off;\nworker_processes 1;\npid ${dir}/nginx.pid;\nerror_log ${dir}/error.log warn;\n` +
    `events { worker_connections 64; }\nhttp {\n  ${t('client_body')} ${t('proxy')} ${t('fastcgi')} ${t('uwsgi')} ${t('scgi')}\n` +
    `  log_format d escape=default '${fmt}';\n  log_format j escape=json '${fmt}';\n` +
    `  access_log ${dir}/nginx-default.log d;\n  access_log ${dir}/nginx-json.log j;\n` +
    `  server {\n    listen 127.0.0.1:${nginxPort};\n    location / { proxy_pass http://${up.addr}; proxy_http_version 1.1; }\n  }\n}\n`;
  await writeFile(path.join(dir, 'nginx.conf'), conf);
  nginx = startPeer('/usr/sbin/nginx', ['-p', dir, '-e', `${dir}/error.log`, '-c', path.join(dir, 'nginx.conf')]);
  // Ready when it accepts connections (a request would add a line to its logs).
  await waitFor(
    () =>
      new Promise<boolean>((resolve) => {
        const s = net.connect(nginxPort, '127.0.0.1', () => {
          s.destroy();
          resolve(true);
        });
        s.on('error', () => resolve(false));
      }),
    10_000,
  );
}

beforeAll(async () => {
  ({ dir, cleanup } = await tempDir('swy-alogfmt-'));
  up = await startEcho('fmt');
  await startNginx();
  for (const escape of ['default', 'json'] as const) {
    const gw = await startTestGateway({
      config: { switchyard: { access_log: { enable: true, path: path.join(dir, `gw-${escape}.log`), format: FORMAT, format_escape: escape } } },
    });
    await gw.put('/routes/all', { uri: '/*', upstream: { nodes: { [up.addr]: 1 } } });
    gws[escape] = gw;
  }
}, 60_000);

afterAll(async () => {
  for (const gw of Object.values(gws)) await gw?.close();
  await nginx?.stop();
  await up?.close();
  await cleanup?.();
});

// Raw requests: header bytes outside ASCII, quotes, backslashes, control characters in a header value (HTAB),
// Basic credentials, a query string, a referer; the marker header tells the lines apart.
const REQUESTS: { note: string; raw: string }[] = [
  { note: 'plain', raw: 'GET /bytes/100 HTTP/1.1\r\nHost: a.test\r\nUser-Agent: curl/8\r\nX-Note: plain\r\n' },
  { note: 'quotes', raw: 'GET /bytes/10?x=1&y=%22q%22 HTTP/1.1\r\nHost: a.test\r\nUser-Agent: say "hi" \\o/\tTAB\r\nX-Note: quotes\r\n' },
  { note: 'utf8', raw: 'GET /bytes/7 HTTP/1.1\r\nHost: a.test\r\nUser-Agent: café €\r\nX-Note: utf8\r\nReferer: http://r.test/p?q=é\r\n' },
  { note: 'user', raw: `GET /bytes/3 HTTP/1.0\r\nHost: a.test\r\nAuthorization: Basic ${Buffer.from('alice:secret').toString('base64')}\r\nX-Note: user\r\n` },
  { note: 'status', raw: 'HEAD /status/204 HTTP/1.1\r\nHost: a.test\r\nX-Note: status\r\n' },
];

async function send(port: number, raw: string): Promise<number> {
  // rawRequest writes the text as UTF-8: 'é' is the two bytes C3 A9 on the wire.
  const r = await rawRequest(port, `${raw}Connection: close\r\n\r\n`);
  return r.status;
}

async function linesOf(file: string, n: number): Promise<string[]> {
  const lines = await waitFor(async () => {
    const l = (await readFile(file, 'utf8').catch(() => '')).split('\n').filter((x) => x !== '');
    return l.length >= n ? l : null;
  }, 10_000);
  return lines!;
}

/** Fields that differ by nature: the local time, the two durations. */
function mask(line: string): string {
  return line
    .replace(/\[\d{2}\/[A-Z][a-z]{2}\/\d{4}:\d{2}:\d{2}:\d{2} [+-]\d{4}\]/, '[TIME]')
    .replace(/ \d+\.\d{3}s /, ' Ns ')
    .replace(/ \d+\.\d{3}$/, ' N');
}

describe('access_log_format, differential against nginx', () => {
  test('the same raw requests log the same lines in escape=default and escape=json', async () => {
    for (const r of REQUESTS) {
      const expected = await send(nginxPort, r.raw);
      for (const gw of Object.values(gws)) expect(await send(gw.port, r.raw)).toBe(expected);
    }
    for (const escape of ['default', 'json'] as const) {
      const theirs = (await linesOf(path.join(dir, `nginx-${escape}.log`), REQUESTS.length)).map(mask);
      const ours = (await linesOf(path.join(dir, `gw-${escape}.log`), REQUESTS.length)).map(mask);
      expect(ours).toEqual(theirs);
    }
    // The comparison covered what it claims: escaped quotes, \xHH bytes, the Basic user, durations.
    const d = await readFile(path.join(dir, 'gw-default.log'), 'utf8');
    expect(d).toContain('say \\x22hi\\x22 \\x5Co/\\x09TAB');
    expect(d).toContain('caf\\xC3\\xA9 \\xE2\\x82\\xAC');
    expect(d).toMatch(/127\.0\.0\.1 - alice \[/);
    expect(d).toMatch(/ \d+\.\d{3}s \d+\.\d{3}\n/);
    const j = await readFile(path.join(dir, 'gw-json.log'), 'utf8');
    expect(j).toContain('say \\"hi\\" \\\\o/\\tTAB');
    expect(j).toContain('café €');
  });
});

describe('access_log_format, beyond nginx', () => {
  test('credential arguments are redacted in $request, $request_uri and $args', async () => {
    const file = path.join(dir, 'redact.log');
    const gw = await startTestGateway({
      config: { switchyard: { access_log: { enable: true, path: file, format: '"$request" $request_uri $args' } } },
    });
    try {
      await gw.put('/routes/all', { uri: '/*', upstream: { nodes: { [up.addr]: 1 } } });
      expect(await send(gw.port, 'GET /bytes/1?apikey=s3cr3t&page=2 HTTP/1.1\r\nHost: a\r\n')).toBe(200);
      const [line] = await linesOf(file, 1);
      expect(line).toBe('"GET /bytes/1?apikey=***&page=2 HTTP/1.1" /bytes/1?apikey=***&page=2 apikey=***&page=2');
    } finally {
      await gw.close();
    }
  });

  test("config.yaml's nginx_config.http access log keys map onto switchyard.access_log, with APISIX's prefix", () => {
    const r = parseLocalConfig(
      [
        'nginx_config:',
        '  http:',
        '    enable_access_log: true',
        '    access_log: logs/access.log',
        '    access_log_format: "$remote_addr $status"',
        '    access_log_format_escape: json',
        '    access_log_buffer: 32k',
      ].join('\n'),
    );
    expect(r.ok).toBe(true);
    if (!r.ok) return;
    expect(r.warnings.join('\n')).not.toMatch(/access_log/);
    const o = accessLogOptions(r.config, '/opt/apisix/conf/config.yaml', false);
    expect(o).toEqual({ path: '/opt/apisix/logs/access.log', format: '$remote_addr $status', escape: 'json', buffer: 32768 });
    const off = parseLocalConfig('nginx_config:\n  http:\n    access_log: "off"\n');
    expect(off.ok && off.config.switchyard.access_log.enable).toBe(false);
    const bad = parseLocalConfig('switchyard:\n  access_log:\n    format: "${unterminated"\n');
    expect(bad.ok).toBe(false);
    expect(parseLocalConfig('switchyard:\n  access_log:\n    buffer: -1\n').ok).toBe(false);
  });

  test("stdout on a terminal gets APISIX's default line, unbuffered; elsewhere JSON unless a format is set", () => {
    const r = parseLocalConfig('{}');
    if (!r.ok) throw new Error(r.errors.join());
    expect(accessLogOptions(r.config, 'conf/config.yaml', true)).toMatchObject({ format: APISIX_ACCESS_LOG_FORMAT, buffer: 0 });
    expect(accessLogOptions(r.config, 'conf/config.yaml', false)).toMatchObject({ format: undefined, buffer: undefined });
    const set = parseLocalConfig('switchyard:\n  access_log:\n    buffer: 4096\n');
    if (!set.ok) throw new Error(set.errors.join());
    expect(accessLogOptions(set.config, 'conf/config.yaml', true).buffer).toBe(4096);
  });
});
