// JWT verification for jwt-auth: signature through jose (never hand-written JWS), registered claims with
// APISIX's exact comparisons (jwt-auth/parser.lua), and a per-credential key cache so a request never
// imports a key.
import { createPublicKey, webcrypto, type KeyObject } from 'node:crypto';
import { compactVerify, decodeJwt, decodeProtectedHeader, type JWTPayload, type ProtectedHeaderParameters } from 'jose';
import type { JsonObject } from '../../../config/resources.ts';
import { decodeBase64Lenient } from '../auth-common.ts';

export const JWT_ALGORITHMS = [
  'HS256', 'HS384', 'HS512',
  'RS256', 'RS384', 'RS512',
  'ES256', 'ES384', 'ES512',
  'PS256', 'PS384', 'PS512',
  'EdDSA',
] as const;

export type JwtAlgorithm = (typeof JWT_ALGORITHMS)[number];

export function isHmac(alg: string): boolean {
  return alg.startsWith('HS');
}

/** What jose verifies with: an HMAC CryptoKey, or a public KeyObject (jose caches its CryptoKey form). */
type VerifyKey = webcrypto.CryptoKey | KeyObject;

/**
 * Keys by consumer/credential conf object. The consumer directory hands out the same conf object for the
 * life of a snapshot, so each credential's key is imported once; a changed credential is a new object and
 * the old entry goes with its snapshot.
 */
const keyCache = new WeakMap<JsonObject, Promise<VerifyKey | null>>();

async function importKey(conf: JsonObject, alg: string): Promise<VerifyKey> {
  if (isHmac(alg)) {
    const secret = conf.secret;
    if (typeof secret !== 'string') throw new Error('no secret');
    const bytes = conf.base64_secret === true ? decodeBase64Lenient(secret) : Buffer.from(secret, 'utf8');
    if (bytes === null) throw new Error('secret is not base64');
    return webcrypto.subtle.importKey('raw', bytes, { name: 'HMAC', hash: `SHA-${alg.slice(2)}` }, false, ['verify']);
  }
  const pem = conf.public_key;
  if (typeof pem !== 'string') throw new Error('no public key');
  // createPublicKey takes SPKI and PKCS#1 PEM alike (and a certificate), as openssl_pkey.new does in APISIX.
  return createPublicKey(pem);
}

/** The verification key of a consumer conf for `alg`, or null when it cannot be built (bad PEM, ...). */
export function verifyKeyFor(conf: JsonObject, alg: string): Promise<VerifyKey | null> {
  let p = keyCache.get(conf);
  if (p === undefined) {
    p = importKey(conf, alg).catch(() => null);
    keyCache.set(conf, p);
  }
  return p;
}

export interface DecodedJwt {
  readonly header: ProtectedHeaderParameters;
  readonly payload: JWTPayload;
}

/** Header and payload of a compact JWS, or null when it is not one (APISIX: "JWT token invalid"). */
export function decodeToken(token: string): DecodedJwt | null {
  try {
    const header = decodeProtectedHeader(token);
    // An unencoded payload (RFC 7797) would make the signed bytes differ from the claims read here.
    if (header.b64 !== undefined) return null;
    return { header, payload: decodeJwt(token) };
  } catch {
    return null;
  }
}

/** True when jose verifies the token's signature with `key` under exactly `alg`. */
export async function signatureValid(token: string, key: VerifyKey, alg: string): Promise<boolean> {
  try {
    await compactVerify(token, key, { algorithms: [alg] });
    return true;
  } catch {
    return false;
  }
}

type ClaimName = 'exp' | 'nbf';
const DEFAULT_CLAIMS: readonly ClaimName[] = ['nbf', 'exp'];

function claimValid(name: ClaimName, value: number, nowSec: number, leeway: number): boolean {
  return name === 'nbf' ? value < nowSec + leeway : value > nowSec - leeway;
}

/**
 * APISIX verify_claims: without `claims_to_verify` (or with an empty list) exp and nbf are checked when
 * present; listed claims are required. A claim that is not a number (JSON null included) fails.
 */
export function claimsValid(payload: JWTPayload, claims: readonly string[] | undefined, leeway: number, nowSec: number): boolean {
  const required = claims !== undefined && claims.length > 0;
  for (const name of (required ? claims : DEFAULT_CLAIMS) as readonly ClaimName[]) {
    const v = payload[name];
    if (v === undefined) {
      if (required) return false;
      continue;
    }
    if (typeof v !== 'number' || !claimValid(name, v, nowSec, leeway)) return false;
  }
  return true;
}
