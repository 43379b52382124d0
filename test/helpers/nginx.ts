// nginx as a real upstream for tests: serves files from a docroot the test fills, normalizing request paths as
// nginx does (so a path trick that gets past the gateway reaches the protected file). Foreground, one worker,
// every path inside its own temp dir, stopped by pid.
import { mkdir, writeFile } from 'node:fs/promises';
import net from 'node:net';
import path from 'node:path';
import { freePort } from './ports.ts';
import { startPeer, tempDir, waitFor, type Peer } from './proc.ts';

export interface NginxUpstream {
  readonly port: number;
  readonly peer: Peer;
  stop(): Promise<void>;
}

/** `files` maps a path below the docroot (e.g. 'admin/x') to its content. */
export async function startNginxFiles(files: Record<string, string>): Promise<NginxUpstream> {
  const { dir, cleanup } = await tempDir('swy-nginx-');
  const www = path.join(dir, 'www');
  for (const [p, content] of Object.entries(files)) {
    await mkdir(path.dirname(path.join(www, p)), { recursive: true });
    await writeFile(path.join(www, p), content);
  }
  const port = await freePort();
  const t = (n: string) => `${n}_temp_path ${dir}/tmp-${n};`;
  const user = process.getuid?.() === 0 ? 'user root;\n' : '';
  const conf =
    `${user}daemon off;\nmaster_process off;\nworker_processes 1;\npid ${dir}/nginx.pid;\nerror_log ${dir}/error.log warn;\n` +
    `events { worker_connections 256; }\n` +
    `http {\n  access_log off;\n  ${t('client_body')} ${t('proxy')} ${t('fastcgi')} ${t('uwsgi')} ${t('scgi')}\n` +
    `  default_type text/plain;\n  server {\n    listen 127.0.0.1:${port};\n    root ${www};\n` +
    `    location / { try_files $uri =404; }\n  }\n}\n`;
  await writeFile(path.join(dir, 'nginx.conf'), conf);
  const peer = startPeer('/usr/sbin/nginx', ['-p', dir, '-e', `${dir}/error.log`, '-c', path.join(dir, 'nginx.conf')]);
  await waitFor(
    () =>
      new Promise<boolean>((resolve) => {
        const s = net.connect(port, '127.0.0.1', () => {
          s.destroy();
          resolve(true);
        });
        s.on('error', () => resolve(false));
      }),
    10_000,
  );
  return {
    port,
    peer,
    stop: async () => {
      await peer.stop();
      await cleanup();
    },
  };
}

/** Sends raw bytes (the request exactly as written: no client-side path normalization) and returns the reply. */
export function rawRequest(port: number, bytes: string, timeoutMs = 5000): Promise<{ status: number; head: string; body: string }> {
  return new Promise((resolve, reject) => {
    const s = net.connect(port, '127.0.0.1');
    let buf = '';
    const timer = setTimeout(() => {
      s.destroy();
      reject(new Error(`no complete reply within ${timeoutMs} ms: ${JSON.stringify(buf.slice(0, 200))}`));
    }, timeoutMs);
    const done = () => {
      clearTimeout(timer);
      s.destroy();
      const sep = buf.indexOf('\r\n\r\n');
      const head = sep < 0 ? buf : buf.slice(0, sep);
      const m = /^HTTP\/1\.[01] (\d{3})/.exec(head);
      resolve({ status: m ? Number(m[1]) : 0, head, body: sep < 0 ? '' : buf.slice(sep + 4) });
    };
    s.on('data', (d) => {
      buf += d.toString('latin1');
      const sep = buf.indexOf('\r\n\r\n');
      if (sep < 0) return;
      const cl = /\r\ncontent-length: *(\d+)/i.exec(buf.slice(0, sep));
      if (cl && buf.length >= sep + 4 + Number(cl[1])) done();
    });
    s.on('end', done);
    s.on('error', (err) => {
      clearTimeout(timer);
      if (buf !== '') done();
      else reject(err);
    });
    s.write(bytes);
  });
}
