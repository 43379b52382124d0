// A real OpenLDAP slapd (Debian package slapd) on random loopback ports: plain LDAP and LDAPS (self-signed
// certificate made with openssl), a temp slapd.conf and mdb directory, suffix dc=example,dc=org with the
// branch ou=users. Users are added with ldapadd (ldap-utils). Stopped by pid.
import { execFile } from 'node:child_process';
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import net from 'node:net';
import path from 'node:path';
import { promisify } from 'node:util';
import { freePort } from './ports.ts';
import { startPeer, tempDir, waitFor, type Peer } from './proc.ts';

const run = promisify(execFile);

export const SLAPD_SUFFIX = 'dc=example,dc=org';
export const SLAPD_USERS = `ou=users,${SLAPD_SUFFIX}`;
const ROOT_DN = `cn=admin,${SLAPD_SUFFIX}`;

export interface Slapd {
  /** host:port of the plain LDAP listener (APISIX `ldap_uri` form). */
  readonly ldapAddr: string;
  /** host:port of the LDAPS listener. */
  readonly ldapsAddr: string;
  /** PEM of the self-signed certificate the LDAPS listener presents. */
  readonly certPem: string;
  readonly peer: Peer;
  /** Adds inetOrgPerson `cn=<cn>,ou=users,...` (special characters escaped) with `userPassword` (ldapadd); returns the DN. */
  addUser(cn: string, password: string): Promise<string>;
  stop(): Promise<void>;
}

function canConnect(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const s = net.connect(port, '127.0.0.1');
    s.once('connect', () => {
      s.destroy();
      resolve(true);
    });
    s.once('error', () => resolve(false));
  });
}

async function ldapadd(port: number, rootPw: string, ldif: string, file: string): Promise<void> {
  await writeFile(file, ldif);
  await run('ldapadd', ['-x', '-H', `ldap://127.0.0.1:${port}`, '-D', ROOT_DN, '-w', rootPw, '-f', file]);
}

export async function startSlapd(): Promise<Slapd> {
  const tmp = await tempDir('swy-slapd-');
  const dir = tmp.dir;
  const [port, tlsPort] = [await freePort(), await freePort()];
  const rootPw = 'root-' + Math.random().toString(36).slice(2);
  await mkdir(path.join(dir, 'data'));
  const cert = path.join(dir, 'cert.pem');
  const key = path.join(dir, 'key.pem');
  await run('openssl', [
    'req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-keyout', key, '-out', cert, '-days', '1',
    '-subj', '/CN=localhost', '-addext', 'subjectAltName=DNS:localhost,IP:127.0.0.1',
  ]);
  const conf = path.join(dir, 'slapd.conf');
  await writeFile(conf, [
    'include /etc/ldap/schema/core.schema',
    'include /etc/ldap/schema/cosine.schema',
    'include /etc/ldap/schema/inetorgperson.schema',
    'modulepath /usr/lib/ldap',
    'moduleload back_mdb',
    `pidfile ${path.join(dir, 'slapd.pid')}`,
    `TLSCertificateFile ${cert}`,
    `TLSCertificateKeyFile ${key}`,
    'database mdb',
    'maxsize 10485760',
    `suffix "${SLAPD_SUFFIX}"`,
    `rootdn "${ROOT_DN}"`,
    `rootpw ${rootPw}`,
    `directory ${path.join(dir, 'data')}`,
    '',
  ].join('\n'));
  // -d 0: stay in the foreground (stopped by pid); no syslog noise.
  const peer = startPeer('/usr/sbin/slapd', ['-d', '0', '-f', conf, '-h', `ldap://127.0.0.1:${port}/ ldaps://127.0.0.1:${tlsPort}/`]);
  try {
    await waitFor(async () => (await canConnect(port)) && (await canConnect(tlsPort)), 10_000);
    await ldapadd(port, rootPw, [
      `dn: ${SLAPD_SUFFIX}`, 'objectClass: dcObject', 'objectClass: organization', 'o: example', 'dc: example', '',
      `dn: ${SLAPD_USERS}`, 'objectClass: organizationalUnit', 'ou: users', '',
    ].join('\n'), path.join(dir, 'base.ldif'));
  } catch (err) {
    await peer.stop();
    await tmp.cleanup();
    throw new Error(`slapd did not start: ${String(err)}\n${peer.output()}`);
  }
  const certPem = await readFile(cert, 'utf8');
  let n = 0;
  return {
    ldapAddr: `127.0.0.1:${port}`,
    ldapsAddr: `127.0.0.1:${tlsPort}`,
    certPem,
    peer,
    addUser: async (cn, password) => {
      const dn = `cn=${cn.replace(/[\\,+"<>;=]/g, (c) => '\\' + c)},${SLAPD_USERS}`;
      await ldapadd(port, rootPw, [
        `dn: ${dn}`, 'objectClass: inetOrgPerson', `cn: ${cn}`, `sn: ${cn}`, `userPassword: ${password}`, '',
      ].join('\n'), path.join(dir, `user${n++}.ldif`));
      return dn;
    },
    stop: async () => {
      await peer.stop();
      await tmp.cleanup();
    },
  };
}
