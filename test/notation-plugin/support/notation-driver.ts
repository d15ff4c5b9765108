import { execFileSync, spawn } from 'node:child_process';
import * as crypto from 'node:crypto';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { KEY_SPEC_INFO, KeySpec } from '../../../src/pki/key-spec';
import { PROJECT_ROOT } from '../../support/server-process';

export const PLUGIN_LAUNCHER = path.join(PROJECT_ROOT, 'bin', 'notation-signet');

/**
 * Compiles the plugin the way `npm run build` does (same compiler options, outDir dist/), but only
 * its own import graph, so work in progress elsewhere under src/ cannot stop these tests.
 */
export function buildPlugin(): void {
  const tsconfig = path.join(fs.mkdtempSync(path.join(os.tmpdir(), 'notation-signet-tsc-')), 'tsconfig.json');
  fs.writeFileSync(
    tsconfig,
    JSON.stringify({
      extends: path.join(PROJECT_ROOT, 'tsconfig.json'),
      compilerOptions: { types: ['node'], typeRoots: [path.join(PROJECT_ROOT, 'node_modules', '@types')] },
      files: ['main.ts', 'standalone.ts'].map((file) => path.join(PROJECT_ROOT, 'src', 'notation-plugin', file)),
      include: [],
    }),
  );
  execFileSync(
    process.execPath,
    [path.join(PROJECT_ROOT, 'node_modules', 'typescript', 'bin', 'tsc'), '-p', tsconfig],
    { stdio: 'inherit' },
  );
  fs.rmSync(path.dirname(tsconfig), { recursive: true, force: true });
}

export interface PluginResult {
  code: number | null;
  stdout: string;
  stderr: string;
  /** stdout parsed as JSON on success, stderr parsed on failure (both must be JSON per the protocol). */
  json: Record<string, unknown>;
}

/**
 * Runs the plugin as Notation does: `<executable> <command>`, one JSON request on stdin (then EOF),
 * stdout/stderr captured. `executable` is run directly (shebang) unless it is the launcher, which
 * runs as `node bin/notation-signet`.
 */
export function runPlugin(
  command: string | string[],
  request: unknown,
  options: { env?: Record<string, string>; executable?: string } = {},
): Promise<PluginResult> {
  const args = Array.isArray(command) ? command : [command];
  const executable = options.executable ?? PLUGIN_LAUNCHER;
  const [file, argv] = executable === PLUGIN_LAUNCHER ? [process.execPath, [executable, ...args]] : [executable, args];
  const child = spawn(file, argv, {
    cwd: os.tmpdir(),
    env: { PATH: process.env.PATH ?? '', HOME: process.env.HOME ?? os.tmpdir(), ...options.env },
    stdio: ['pipe', 'pipe', 'pipe'],
  });
  let stdout = '';
  let stderr = '';
  child.stdout.setEncoding('utf8').on('data', (chunk: string) => (stdout += chunk));
  child.stderr.setEncoding('utf8').on('data', (chunk: string) => (stderr += chunk));
  child.stdin.end(typeof request === 'string' ? request : JSON.stringify(request));
  return new Promise((resolve, reject) => {
    child.on('error', reject);
    child.on('close', (code) => {
      const text = code === 0 ? stdout : stderr;
      let json: Record<string, unknown> = {};
      try {
        json = JSON.parse(text) as Record<string, unknown>;
      } catch {
        json = { unparsable: text };
      }
      resolve({ code, stdout, stderr, json });
    });
  });
}

/**
 * The JWS signing input Notation builds for an OCI image (notation-go internal/envelope + JWS
 * envelope): b64url(protected header) "." b64url(payload), and the request's `payload` is that string
 * base64-encoded once more.
 */
export function jwsSigningInput(
  spec: KeySpec,
  image = 'registry.example.com/team/app:1.4.2',
): { signingInput: string; digest: string; size: number } {
  const manifest = Buffer.from(
    JSON.stringify({
      schemaVersion: 2,
      mediaType: 'application/vnd.oci.image.manifest.v1+json',
      config: {
        mediaType: 'application/vnd.oci.image.config.v1+json',
        digest: `sha256:${sha256(image + ':config')}`,
        size: 1472,
      },
      layers: [
        {
          mediaType: 'application/vnd.oci.image.layer.v1.tar+gzip',
          digest: `sha256:${sha256(image + ':layer')}`,
          size: 3623807,
        },
      ],
    }),
  );
  const digest = `sha256:${sha256(manifest)}`;
  const header = {
    alg: KEY_SPEC_INFO[spec].jwsAlg,
    crit: ['io.cncf.notary.signingScheme'],
    cty: 'application/vnd.cncf.notary.payload.v1+json',
    'io.cncf.notary.signingScheme': 'notary.x509',
    'io.cncf.notary.signingTime': new Date().toISOString().replace(/\.\d{3}Z$/, 'Z'),
  };
  const payload = {
    targetArtifact: {
      mediaType: 'application/vnd.oci.image.manifest.v1+json',
      digest,
      size: manifest.length,
      annotations: { 'org.opencontainers.image.source': 'https://git.example.com/team/app' },
    },
  };
  const b64url = (value: unknown) => Buffer.from(JSON.stringify(value)).toString('base64url');
  return { signingInput: `${b64url(header)}.${b64url(payload)}`, digest, size: manifest.length };
}

export function generateSignatureRequest(
  spec: KeySpec,
  keyId: string,
  pluginConfig: Record<string, string>,
  signingInput: string,
): Record<string, unknown> {
  return {
    contractVersion: '1.0',
    keyId,
    keySpec: spec,
    hashAlgorithm: KEY_SPEC_INFO[spec].hash,
    payload: Buffer.from(signingInput, 'latin1').toString('base64'),
    pluginConfig,
  };
}

function sha256(data: string | Buffer): string {
  return crypto.createHash('sha256').update(data).digest('hex');
}

/**
 * Verifies a generate-signature response with the OpenSSL CLI against the public key of the leaf of
 * the returned chain. ECDSA arrives as raw r||s (what JWS needs); OpenSSL wants DER, so it is converted.
 * Returns OpenSSL's verdict; `true` only for "Verified OK".
 */
export function opensslVerifies(
  dir: string,
  spec: KeySpec,
  signedBytes: Buffer,
  signatureB64: string,
  leafDerB64: string,
): boolean {
  fs.mkdirSync(dir, { recursive: true });
  const info = KEY_SPEC_INFO[spec];
  fs.writeFileSync(path.join(dir, 'leaf.der'), Buffer.from(leafDerB64, 'base64'));
  execFileSync('openssl', ['x509', '-inform', 'DER', '-in', 'leaf.der', '-pubkey', '-noout', '-out', 'pub.pem'], {
    cwd: dir,
  });
  fs.writeFileSync(path.join(dir, 'input.bin'), signedBytes);
  const signature = Buffer.from(signatureB64, 'base64');
  fs.writeFileSync(path.join(dir, 'sig.bin'), info.kind === 'EC' ? rawEcdsaToDer(signature) : signature);
  const digest = `-${info.hash.replace('SHA-', 'sha')}`;
  const pss = info.kind === 'RSA' ? ['-sigopt', 'rsa_padding_mode:pss', '-sigopt', 'rsa_pss_saltlen:digest'] : [];
  try {
    const out = execFileSync(
      'openssl',
      ['dgst', digest, '-verify', 'pub.pem', ...pss, '-signature', 'sig.bin', 'input.bin'],
      {
        cwd: dir,
        encoding: 'utf8',
        stdio: ['ignore', 'pipe', 'pipe'],
      },
    );
    return out.trim() === 'Verified OK';
  } catch {
    return false; // openssl exits 1 with "Verification failure"
  }
}

/** IEEE P1363 r||s → DER SEQUENCE { INTEGER r, INTEGER s }. */
export function rawEcdsaToDer(raw: Buffer): Buffer {
  const integer = (bytes: Buffer) => {
    let start = 0;
    while (start < bytes.length - 1 && bytes[start] === 0) start++;
    let value = bytes.subarray(start);
    if (value[0] & 0x80) value = Buffer.concat([Buffer.from([0]), value]);
    return Buffer.concat([Buffer.from([0x02]), derLength(value.length), value]);
  };
  const half = raw.length / 2;
  const content = Buffer.concat([integer(raw.subarray(0, half)), integer(raw.subarray(half))]);
  return Buffer.concat([Buffer.from([0x30]), derLength(content.length), content]);
}

function derLength(length: number): Buffer {
  return length < 0x80 ? Buffer.from([length]) : Buffer.from([0x81, length]);
}
