import 'reflect-metadata';
import * as x509 from '@peculiar/x509';
import { constants, createPublicKey, randomBytes, verify } from 'node:crypto';
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { NestFastifyApplication } from '@nestjs/platform-fastify';
import { ChangeNotifier } from '../../src/database/change-notifier';
import { KEYS_CHANNEL } from '../../src/signing/active-key-cache';

export const SUBJECT = { C: 'US', ST: 'Washington', O: 'Example Corp' };
export const DAY = 86_400_000;
const HASH_OF: Record<string, { hash: string; node: string; bytes: number }> = {
  'EC-256': { hash: 'SHA-256', node: 'sha256', bytes: 32 },
  'EC-384': { hash: 'SHA-384', node: 'sha384', bytes: 48 },
  'EC-521': { hash: 'SHA-512', node: 'sha512', bytes: 64 },
  'RSA-3072': { hash: 'SHA-384', node: 'sha384', bytes: 48 },
};

export interface SignatureRecord {
  key: string;
  keySpec: string;
  version: number;
  at: Date;
  payload: Buffer;
  signature: Buffer;
  chain: Buffer[];
}

export function http(app: NestFastifyApplication, token: string) {
  return async (method: 'GET' | 'POST', url: string, payload?: unknown) => {
    const response = await app.inject({
      method,
      url,
      payload: payload as object,
      headers: { authorization: `Bearer ${token}` },
    });
    // eslint-disable-next-line @typescript-eslint/no-explicit-any -- response bodies are read loosely in tests
    return { status: response.statusCode, body: response.body ? (JSON.parse(response.body) as any) : undefined };
  };
}

/** POST /v1/keys/{name}/sign (payload mode: Signet hashes it); the answer with the chain it came with. */
export async function signWith(
  app: NestFastifyApplication,
  token: string,
  key: string,
  keySpec: string,
  at: Date,
): Promise<SignatureRecord> {
  const payload = randomBytes(48);
  const response = await app.inject({
    method: 'POST',
    url: `/v1/keys/${key}/sign`,
    payload: { payload: payload.toString('base64'), hashAlgorithm: HASH_OF[keySpec].hash, signatureFormat: 'raw' },
    headers: { authorization: `Bearer ${token}` },
  });
  if (response.statusCode !== 200)
    throw new Error(`sign ${key} at ${at.toISOString()}: ${response.statusCode} ${response.body}`);
  const body = JSON.parse(response.body) as { keyVersion: number; signature: string; certificateChain: string[] };
  return {
    key,
    keySpec,
    version: body.keyVersion,
    at,
    payload,
    signature: Buffer.from(body.signature, 'base64'),
    chain: body.certificateChain.map((c) => Buffer.from(c, 'base64')),
  };
}

/** The signature verifies with the public key of the chain's leaf (ECDSA raw r‖s; RSA-PSS, salt = hash length). */
export function signatureVerifies(record: SignatureRecord): boolean {
  const { node, bytes } = HASH_OF[record.keySpec];
  const leaf = new x509.X509Certificate(record.chain[0]);
  const key = createPublicKey({ key: Buffer.from(leaf.publicKey.rawData), format: 'der', type: 'spki' });
  return record.keySpec.startsWith('EC')
    ? verify(node, record.payload, { key, dsaEncoding: 'ieee-p1363' }, record.signature)
    : verify(
        node,
        record.payload,
        { key, padding: constants.RSA_PKCS1_PSS_PADDING, saltLength: bytes },
        record.signature,
      );
}

/** Chain order and validity at the signing instant: leaf ← issuing ← self-signed root, each valid then. */
export async function chainValidAt(chain: Buffer[], at: Date): Promise<string | undefined> {
  const certificates = chain.map((der) => new x509.X509Certificate(der));
  for (let i = 0; i < certificates.length; i++) {
    const certificate = certificates[i];
    if (certificate.notBefore > at || certificate.notAfter < at)
      return `certificate ${i} (${certificate.subject}) is not valid at ${at.toISOString()}`;
    const issuer = certificates[Math.min(i + 1, certificates.length - 1)];
    if (!(await certificate.verify({ publicKey: issuer.publicKey, signatureOnly: true })))
      return `certificate ${i} is not signed by certificate ${Math.min(i + 1, certificates.length - 1)}`;
  }
  const root = certificates[certificates.length - 1];
  if (root.subject !== root.issuer) return 'the last certificate is not self-signed';
  return undefined;
}

/** Resolves when the signing cache channel announces a change to `key` (the signing cache has then dropped it). */
export function keyChangeAnnounced(app: NestFastifyApplication, key: string): Promise<void> {
  return new Promise((resolve) => app.get(ChangeNotifier).on(KEYS_CHANNEL, (payload) => payload === key && resolve()));
}

export function openssl(args: string[], cwd: string): { ok: boolean; out: string } {
  const result = spawnSync('openssl', args, { cwd, encoding: 'utf8' });
  return { ok: result.status === 0, out: `${result.stdout}${result.stderr}` };
}

export function writePem(dir: string, name: string, der: Buffer): string {
  const file = path.join(dir, name);
  fs.writeFileSync(
    file,
    `-----BEGIN CERTIFICATE-----\n${der
      .toString('base64')
      .replace(/(.{64})/g, '$1\n')
      .replace(/\n$/, '')}\n-----END CERTIFICATE-----\n`,
  );
  return file;
}
