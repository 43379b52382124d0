// nginx as the static upstream (1 KB and 1 MB bodies from files) and as a comparison peer (HTTP reverse proxy
// with upstream keepalive, optionally 10,000 exact-match locations; the same proxy terminating TLS; TCP stream
// proxy). One worker, foreground,
// every path (pid, logs, temp files) inside the instance's own temp dir.
import { mkdir, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { fdHardLimit, spawnService, waitListening, type Service } from './service.ts';

export const NGINX_BIN = '/usr/sbin/nginx';
export const NGINX_STREAM_MODULE = '/usr/lib/nginx/modules/ngx_stream_module.so';

export const BODY_SMALL = 1024;
export const BODY_LARGE = 1024 * 1024;

function mainConf(dir: string, opts: { stream: boolean }): string {
  // Workers of a root master drop to `nobody` by default and could not read the temp dir (mode 0700).
  const user = process.getuid?.() === 0 ? 'user root;\n' : '';
  const fds = fdHardLimit();
  return (
    (opts.stream ? `load_module ${NGINX_STREAM_MODULE};\n` : '') +
    user +
    `daemon off;\nmaster_process on;\nworker_processes 1;\nworker_rlimit_nofile ${fds};\n` +
    `pid ${dir}/nginx.pid;\nerror_log ${dir}/error.log warn;\n` +
    `events { worker_connections ${fds - 64}; multi_accept on; }\n`
  );
}

function httpPrelude(dir: string): string {
  const t = (n: string) => `${n}_temp_path ${dir}/tmp-${n};`;
  return (
    `  access_log off;\n  ${t('client_body')} ${t('proxy')} ${t('fastcgi')} ${t('uwsgi')} ${t('scgi')}\n` +
    `  keepalive_requests 10000000;\n  keepalive_timeout 75s;\n  default_type application/octet-stream;\n`
  );
}

async function launch(name: string, dir: string, conf: string, ports: number[]): Promise<Service> {
  await mkdir(dir, { recursive: true });
  const file = path.join(dir, 'nginx.conf');
  await writeFile(file, conf);
  const svc = spawnService(name, NGINX_BIN, ['-p', dir, '-e', `${dir}/error.log`, '-c', file]);
  await waitListening(svc, ports);
  return svc;
}

/**
 * Static upstream: every path answers the 1 KB body, except `/big` (1 MB). Chosen over a Node upstream: nginx
 * serves a cached small file for a few µs of CPU, so the proxy under test, not the upstream, is the bottleneck
 * on a 2-core machine.
 */
export async function startNginxUpstream(dir: string, port: number): Promise<Service> {
  const www = path.join(dir, 'www');
  await mkdir(www, { recursive: true });
  await writeFile(path.join(www, 'small.bin'), Buffer.alloc(BODY_SMALL, 'x'));
  await writeFile(path.join(www, 'big.bin'), Buffer.alloc(BODY_LARGE, 'y'));
  const conf =
    mainConf(dir, { stream: false }) +
    `http {\n${httpPrelude(dir)}  sendfile on;\n  open_file_cache max=16;\n` +
    `  server {\n    listen 127.0.0.1:${port} backlog=4096;\n    root ${www};\n` +
    `    location / { try_files /small.bin =404; }\n    location = /big { try_files /big.bin =404; }\n  }\n}\n`;
  return launch('upstream(nginx)', dir, conf, [port]);
}

/**
 * Reverse proxy to `upstreamPort` with keepalive 64. With `routes`, only the exact paths /r/0../r/<routes-1>
 * are proxied (one `location =` each) and anything else is 404, mirroring the gateway's 10,000-route table.
 */
export async function startNginxProxy(dir: string, port: number, upstreamPort: number, routes = 0): Promise<Service> {
  let locations = '';
  if (routes > 0) {
    const lines: string[] = [];
    for (let i = 0; i < routes; i++) lines.push(`    location = /r/${i} { proxy_pass http://up; }`);
    locations = `${lines.join('\n')}\n    location / { return 404; }\n`;
  } else {
    locations = '    location / { proxy_pass http://up; }\n';
  }
  const conf =
    mainConf(dir, { stream: false }) +
    `http {\n${httpPrelude(dir)}` +
    `  upstream up { server 127.0.0.1:${upstreamPort}; keepalive 64; }\n` +
    `  server {\n    listen 127.0.0.1:${port} backlog=4096;\n` +
    `    proxy_http_version 1.1;\n    proxy_set_header Connection "";\n` +
    locations +
    `  }\n}\n`;
  return launch('nginx', dir, conf, [port]);
}

/**
 * HTTPS reverse proxy to `upstreamPort` (keepalive 64, plain HTTP/1.1 upstream), terminating TLS with the given
 * PEM files, TLSv1.2-1.3 as APISIX's default `ssl_protocols`, HTTP/1.1 only (h2 off: wrk speaks HTTP/1.1).
 */
export async function startNginxHttpsProxy(dir: string, port: number, upstreamPort: number, tls: { certFile: string; keyFile: string }): Promise<Service> {
  const conf =
    mainConf(dir, { stream: false }) +
    `http {\n${httpPrelude(dir)}` +
    `  upstream up { server 127.0.0.1:${upstreamPort}; keepalive 64; }\n` +
    `  server {\n    listen 127.0.0.1:${port} ssl backlog=4096;\n` +
    `    ssl_certificate ${tls.certFile};\n    ssl_certificate_key ${tls.keyFile};\n    ssl_protocols TLSv1.2 TLSv1.3;\n` +
    `    proxy_http_version 1.1;\n    proxy_set_header Connection "";\n` +
    '    location / { proxy_pass http://up; }\n' +
    `  }\n}\n`;
  return launch('nginx-https', dir, conf, [port]);
}

/** TCP stream proxy (ngx_stream_module) from `port` to `upstreamPort`. */
export async function startNginxStream(dir: string, port: number, upstreamPort: number): Promise<Service> {
  const conf =
    mainConf(dir, { stream: true }) +
    `stream {\n  server {\n    listen 127.0.0.1:${port} backlog=4096;\n    proxy_pass 127.0.0.1:${upstreamPort};\n` +
    `    proxy_timeout 10m;\n  }\n}\n`;
  return launch('nginx-stream', dir, conf, [port]);
}
