import * as fs from 'node:fs';
import * as path from 'node:path';
import { Client } from 'pg';
import { ADMIN_TOKEN_FILE } from '../../src/auth/admin-token.bootstrap';
import { KEY_SPEC_INFO, KEY_SPECS, KeySpec } from '../../src/pki/key-spec';
import { KEY_STORE, KeyStore } from '../../src/hsm/key-store';
import { ActiveKeyCache, KEYS_CHANNEL } from '../../src/signing/active-key-cache';
import { query } from '../support/database';
import { tempDir } from '../support/server-process';
import { startTestApp, TestApp } from '../support/test-app';
import {
  artifactDigest,
  notaryCoseSigStructure,
  notarySigningInput,
  opensslVerifiesChain,
  opensslVerifiesMessage,
  sha,
  SUBJECT,
} from './support/signing-kit';

/**
 * POST /v1/keys/{name}/sign on the whole application in-process (real PostgreSQL, SoftHSM2 token,
 * the dev CA hierarchy). Signatures and chains are checked with OpenSSL's CLI, never with Signet's
 * own code; "nothing reached the HSM" is read from the key store's C_Sign counters.
 */
describe('POST /v1/keys/{name}/sign', () => {
  let t: TestApp;
  let dir: string;
  let admin: string;
  let keyStore: KeyStore;
  const keyNames: Record<KeySpec, string> = {
    'EC-256': 'sign-ec256',
    'EC-384': 'sign-ec384',
    'EC-521': 'sign-ec521',
    'RSA-2048': 'sign-rsa2048',
    'RSA-3072': 'sign-rsa3072',
    'RSA-4096': 'sign-rsa4096',
  };
  const tokens: Record<string, { id: string; token: string }> = {};

  const auth = (token: string) => ({ authorization: `Bearer ${token}` });
  const sign = (key: string, body: unknown, token = tokens.signer.token) =>
    t.app.inject({
      method: 'POST',
      url: `/v1/keys/${key}/sign`,
      headers: { ...auth(token), 'content-type': 'application/json' },
      payload: JSON.stringify(body),
    });
  const hsmSigns = () => keyStore.counters().signAttempts;

  async function createKey(name: string, keySpec: KeySpec, requires?: string[]): Promise<void> {
    const response = await t.app.inject({
      method: 'POST',
      url: '/v1/keys',
      headers: auth(admin),
      payload: { name, keySpec, subject: { ...SUBJECT, CN: name }, ...(requires ? { requires } : {}) },
    });
    expect(response.statusCode).toBe(201);
  }

  async function createToken(name: string, role: string, keys?: string[]): Promise<{ id: string; token: string }> {
    const response = await t.app.inject({
      method: 'POST',
      url: '/v1/tokens',
      headers: auth(admin),
      payload: { name, role, ...(keys ? { keys } : {}) },
    });
    expect(response.statusCode).toBe(201);
    return { id: response.json().id, token: response.json().token };
  }

  beforeAll(async () => {
    t = await startTestApp({ SIGNET_AUDIT_CHECKPOINT_INTERVAL_SECONDS: '0' });
    dir = tempDir('signing-');
    admin = fs.readFileSync(path.join(t.config.dataDir, ADMIN_TOKEN_FILE), 'utf8').trim();
    keyStore = t.app.get<KeyStore>(KEY_STORE);
    for (const spec of KEY_SPECS) await createKey(keyNames[spec], spec);
    await createKey('other-key', 'EC-256');
    await createKey('stage-test', 'EC-256');
    await createKey('stage-prod', 'EC-256', ['stage-test']);
    tokens.signer = await createToken('ci-signer', 'signer', [...Object.values(keyNames), 'stage-test', 'stage-prod']);
    tokens.signer2 = await createToken('ci-signer-2', 'signer', [keyNames['EC-256']]);
    tokens.auditor = await createToken('auditor', 'auditor');
    tokens.officer = await createToken('officer', 'security-officer');
  }, 300_000);
  afterAll(() => t?.close());

  describe('signatures OpenSSL verifies', () => {
    it.each(KEY_SPECS)(
      'signs a client digest with a %s key; OpenSSL verifies it with the returned leaf, and the chain with openssl verify',
      async (spec) => {
        const info = KEY_SPEC_INFO[spec];
        const message = Buffer.from(`artifact bytes for ${spec}`);
        const response = await sign(keyNames[spec], {
          digest: sha(spec, message).toString('base64'),
          hashAlgorithm: info.hash,
        });
        expect(response.statusCode).toBe(200);
        expect(response.headers['content-type']).toContain('application/json');
        const body = response.json();
        expect(body).toEqual({
          keyName: keyNames[spec],
          keyVersion: 1,
          keySpec: spec,
          signingAlgorithm: info.signingAlgorithm,
          signature: expect.any(String),
          certificateChain: [expect.any(String), expect.any(String), expect.any(String)],
        });
        if (info.kind === 'EC') expect(Buffer.from(body.signature, 'base64')).toHaveLength(info.rawSignatureLength!);
        expect(
          opensslVerifiesMessage(
            path.join(dir, `digest-${spec}`),
            spec,
            message,
            body.signature,
            body.certificateChain,
          ),
        ).toBe(true);
        // OpenSSL is not rubber-stamping: another message fails with the same signature.
        expect(
          opensslVerifiesMessage(
            path.join(dir, `digest-${spec}-other`),
            spec,
            Buffer.from('something else'),
            body.signature,
            body.certificateChain,
          ),
        ).toBe(false);
        const chain = opensslVerifiesChain(path.join(dir, `chain-${spec}`), body.certificateChain);
        expect(chain.out).toContain('leaf.pem: OK');
        expect(chain.ok).toBe(true);
      },
    );

    it('payload mode: Signet hashes the bytes (OpenSSL verifies over them) and records nothing as artifact for an opaque payload', async () => {
      const payload = Buffer.from('opaque bytes, not a JWS');
      const response = await sign(keyNames['RSA-3072'], {
        payload: payload.toString('base64'),
        hashAlgorithm: 'SHA-384',
      });
      expect(response.statusCode).toBe(200);
      expect(response.json().artifact).toBeUndefined();
      expect(
        opensslVerifiesMessage(
          path.join(dir, 'payload-rsa'),
          'RSA-3072',
          payload,
          response.json().signature,
          response.json().certificateChain,
        ),
      ).toBe(true);
    });

    it('payload mode with a Notary JWS signing input: returns and audits its targetArtifact; OpenSSL verifies over the signing input', async () => {
      const jws = notarySigningInput('EC-384', 'registry.example.com/team/app:2.0', new Date());
      const response = await sign(keyNames['EC-384'], {
        payload: Buffer.from(jws.signingInput).toString('base64'),
        hashAlgorithm: 'SHA-384',
        signatureFormat: 'raw',
      });
      expect(response.statusCode).toBe(200);
      const body = response.json();
      expect(body.artifact).toEqual({
        digest: jws.digest,
        mediaType: 'application/vnd.oci.image.manifest.v1+json',
        size: jws.size,
      });
      expect(
        opensslVerifiesMessage(
          path.join(dir, 'jws-ec384'),
          'EC-384',
          Buffer.from(jws.signingInput),
          body.signature,
          body.certificateChain,
        ),
      ).toBe(true);
      const [row] = await query<{ data: Record<string, unknown> }>(
        t.database.url,
        `SELECT data FROM audit_events WHERE type = 'sign' AND data->>'signature' = $1`,
        [body.signature],
      );
      expect(row.data).toMatchObject({
        mode: 'payload',
        artifact: body.artifact,
        artifactSource: 'payload',
        algorithm: 'ECDSA-SHA-384',
        digest: `sha384:${sha('EC-384', jws.signingInput).toString('hex')}`,
      });
    });

    it('signatureFormat der gives an ASN.1 ECDSA signature OpenSSL verifies as it is', async () => {
      const message = Buffer.from('der please');
      const response = await sign(keyNames['EC-256'], {
        digest: sha('EC-256', message).toString('base64'),
        hashAlgorithm: 'SHA-256',
        signatureFormat: 'der',
      });
      expect(response.statusCode).toBe(200);
      const signature = Buffer.from(response.json().signature, 'base64');
      expect(signature[0]).toBe(0x30);
      expect(
        opensslVerifiesMessage(
          path.join(dir, 'der-ec256'),
          'EC-256',
          message,
          response.json().signature,
          response.json().certificateChain,
          'der',
        ),
      ).toBe(true);
    });

    it('records each signature in the audit log with key, version, digest, artifact, algorithm, token id and client address', async () => {
      const digest = sha('EC-256', 'audited');
      const artifact = { digest: artifactDigest('audited image') };
      const response = await sign(
        keyNames['EC-256'],
        { digest: digest.toString('base64'), hashAlgorithm: 'SHA-256', artifact },
        tokens.signer.token,
      );
      expect(response.statusCode).toBe(200);
      expect(response.json().artifact).toEqual(artifact);
      const rows = await query<{ subject: string; actor: Record<string, unknown>; data: Record<string, unknown> }>(
        t.database.url,
        `SELECT subject, actor, data FROM audit_events WHERE type = 'sign' AND data->>'signature' = $1`,
        [response.json().signature],
      );
      expect(rows).toHaveLength(1);
      expect(rows[0].subject).toBe(keyNames['EC-256']);
      expect(rows[0].actor).toEqual({
        tokenId: tokens.signer.id,
        tokenName: 'ci-signer',
        role: 'signer',
        address: '127.0.0.1',
      });
      expect(rows[0].data).toEqual({
        version: 1,
        keySpec: 'EC-256',
        algorithm: 'ECDSA-SHA-256',
        digest: `sha256:${digest.toString('hex')}`,
        mode: 'digest',
        signatureFormat: 'raw',
        signature: response.json().signature,
        artifact,
        // The client's word: Signet cannot check it against a digest.
        artifactSource: 'claimed',
      });
      expect(JSON.stringify(rows)).not.toContain(tokens.signer.token);
    });
  });

  describe('invalid input never reaches the HSM', () => {
    const ec = () => keyNames['EC-256'];
    const good = sha('EC-256', 'x').toString('base64');
    const cases: Array<[string, () => { key?: string; body: unknown; raw?: string }, number, string]> = [
      ['an empty body object', () => ({ body: {} }), 400, 'VALIDATION_ERROR'],
      ['an empty digest', () => ({ body: { digest: '', hashAlgorithm: 'SHA-256' } }), 400, 'INVALID_DIGEST_LENGTH'],
      [
        'a digest of the wrong length (SHA-1 size)',
        () => ({ body: { digest: Buffer.alloc(20, 1).toString('base64'), hashAlgorithm: 'SHA-256' } }),
        400,
        'INVALID_DIGEST_LENGTH',
      ],
      [
        'a 48-byte digest for an EC-256 key',
        () => ({ body: { digest: Buffer.alloc(48, 1).toString('base64'), hashAlgorithm: 'SHA-256' } }),
        400,
        'INVALID_DIGEST_LENGTH',
      ],
      [
        'a 1 MiB digest (over the body limit)',
        () => ({ body: { digest: Buffer.alloc(1024 * 1024, 7).toString('base64'), hashAlgorithm: 'SHA-256' } }),
        413,
        'PAYLOAD_TOO_LARGE',
      ],
      [
        'a 600 KiB digest (under the body limit)',
        () => ({ body: { digest: Buffer.alloc(600 * 1024, 7).toString('base64'), hashAlgorithm: 'SHA-256' } }),
        400,
        'INVALID_DIGEST_LENGTH',
      ],
      [
        'bad base64',
        () => ({ body: { digest: `${good.slice(0, -4)}!!!=`, hashAlgorithm: 'SHA-256' } }),
        400,
        'INVALID_BASE64',
      ],
      [
        'base64url instead of base64',
        () => ({ body: { digest: Buffer.alloc(32, 0xfb).toString('base64url'), hashAlgorithm: 'SHA-256' } }),
        400,
        'INVALID_BASE64',
      ],
      [
        'base64 without padding',
        () => ({ body: { digest: good.replace(/=+$/, ''), hashAlgorithm: 'SHA-256' } }),
        400,
        'INVALID_BASE64',
      ],
      [
        'the wrong hash for the key spec',
        () => ({ body: { digest: Buffer.alloc(48, 1).toString('base64'), hashAlgorithm: 'SHA-384' } }),
        400,
        'UNSUPPORTED_ALGORITHM',
      ],
      ['an unknown hash', () => ({ body: { digest: good, hashAlgorithm: 'MD5' } }), 400, 'UNSUPPORTED_ALGORITHM'],
      ['a missing hashAlgorithm', () => ({ body: { digest: good } }), 400, 'VALIDATION_ERROR'],
      [
        'an unknown field',
        () => ({ body: { digest: good, hashAlgorithm: 'SHA-256', keyVersion: 1 } }),
        400,
        'VALIDATION_ERROR',
      ],
      [
        'an unknown field in artifact',
        () => ({
          body: { digest: good, hashAlgorithm: 'SHA-256', artifact: { digest: artifactDigest('a'), tag: 'latest' } },
        }),
        400,
        'VALIDATION_ERROR',
      ],
      [
        'an artifact digest that is not sha256:<hex>',
        () => ({ body: { digest: good, hashAlgorithm: 'SHA-256', artifact: { digest: 'sha256:ABC' } } }),
        400,
        'VALIDATION_ERROR',
      ],
      [
        'both digest and payload',
        () => ({ body: { digest: good, payload: good, hashAlgorithm: 'SHA-256' } }),
        400,
        'VALIDATION_ERROR',
      ],
      [
        'a payload over 64 KiB',
        () => ({ body: { payload: Buffer.alloc(64 * 1024 + 1).toString('base64'), hashAlgorithm: 'SHA-256' } }),
        413,
        'PAYLOAD_TOO_LARGE',
      ],
      ['an empty payload', () => ({ body: { payload: '', hashAlgorithm: 'SHA-256' } }), 400, 'VALIDATION_ERROR'],
      [
        'signatureFormat der for an RSA key',
        () => ({ key: keyNames['RSA-2048'], body: { digest: good, hashAlgorithm: 'SHA-256', signatureFormat: 'der' } }),
        400,
        'VALIDATION_ERROR',
      ],
      [
        'an unknown signatureFormat',
        () => ({ body: { digest: good, hashAlgorithm: 'SHA-256', signatureFormat: 'pem' } }),
        400,
        'VALIDATION_ERROR',
      ],
      ['a JSON array body', () => ({ body: [good] }), 400, 'VALIDATION_ERROR'],
      ['malformed JSON', () => ({ body: undefined, raw: '{"digest": ' }), 400, 'VALIDATION_ERROR'],
      [
        "a JWS signing input whose alg is not the key's",
        () => ({
          body: {
            payload: Buffer.from(notarySigningInput('EC-256', 'img', new Date(), 'PS256').signingInput).toString(
              'base64',
            ),
            hashAlgorithm: 'SHA-256',
          },
        }),
        400,
        'UNSUPPORTED_ALGORITHM',
      ],
      [
        "another key's name (not granted)",
        () => ({ key: 'other-key', body: { digest: good, hashAlgorithm: 'SHA-256' } }),
        404,
        'NOT_FOUND',
      ],
      [
        'a key that does not exist',
        () => ({ key: 'no-such-key', body: { digest: good, hashAlgorithm: 'SHA-256' } }),
        404,
        'NOT_FOUND',
      ],
    ];

    it.each(cases)('refuses %s with a code, the HSM untouched', async (_, make, status, code) => {
      const { key, body, raw } = make();
      const before = hsmSigns();
      const response = raw
        ? await t.app.inject({
            method: 'POST',
            url: `/v1/keys/${ec()}/sign`,
            headers: { ...auth(tokens.signer.token), 'content-type': 'application/json' },
            payload: raw,
          })
        : await sign(key ?? ec(), body);
      expect({ status: response.statusCode, code: response.json().error?.code }).toEqual({ status, code });
      expect(typeof response.json().error.message).toBe('string');
      expect(hsmSigns()).toBe(before);
    });

    it('answers a signer asking for an ungranted key exactly as for a key that does not exist', async () => {
      const body = { digest: good, hashAlgorithm: 'SHA-256' };
      const ungranted = await sign('other-key', body);
      const missing = await sign('no-such-key', body);
      expect(ungranted.statusCode).toBe(404);
      expect(missing.statusCode).toBe(404);
      expect(ungranted.json().error.code).toBe('NOT_FOUND');
      // Same shape and wording, only the name differs: the answers cannot be told apart.
      expect(ungranted.body.replace('other-key', 'NAME')).toBe(missing.body.replace('no-such-key', 'NAME'));
      expect(Object.keys(ungranted.headers).sort()).toEqual(Object.keys(missing.headers).sort());
    });
  });

  describe('authorisation', () => {
    const body = () => ({ digest: sha('EC-256', 'authz').toString('base64'), hashAlgorithm: 'SHA-256' });

    it('lets a signer sign with a granted key and an admin with any key', async () => {
      expect((await sign(keyNames['EC-256'], body(), tokens.signer2.token)).statusCode).toBe(200);
      expect((await sign('other-key', body(), admin)).statusCode).toBe(200);
    });

    it('answers 404 to a signer for a key it was not granted', async () => {
      const response = await sign(
        keyNames['EC-384'],
        { digest: sha('EC-384', 'x').toString('base64'), hashAlgorithm: 'SHA-384' },
        tokens.signer2.token,
      );
      expect(response.statusCode).toBe(404);
      expect(response.json().error.code).toBe('NOT_FOUND');
    });

    it.each(['auditor', 'officer'])('answers 403 to the %s role', async (who) => {
      const before = hsmSigns();
      const response = await sign(keyNames['EC-256'], body(), tokens[who].token);
      expect(response.statusCode).toBe(403);
      expect(response.json().error.code).toBe('FORBIDDEN');
      expect(hsmSigns()).toBe(before);
    });

    it('answers 401 without a token or with an unknown one', async () => {
      const none = await t.app.inject({ method: 'POST', url: `/v1/keys/${keyNames['EC-256']}/sign`, payload: body() });
      expect(none.statusCode).toBe(401);
      expect(none.json().error.code).toBe('UNAUTHENTICATED');
      const bogus = await sign(keyNames['EC-256'], body(), 'sgt_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA');
      expect(bogus.statusCode).toBe(401);
    });
  });

  describe('idempotencyKey', () => {
    it('returns the original response for a repeat from the same token, signing once', async () => {
      const request = {
        digest: sha('EC-256', 'idem-1').toString('base64'),
        hashAlgorithm: 'SHA-256',
        idempotencyKey: 'build-1234/step-7',
      };
      const before = hsmSigns();
      const first = await sign(keyNames['EC-256'], request);
      const second = await sign(keyNames['EC-256'], request);
      expect(first.statusCode).toBe(200);
      expect(second.statusCode).toBe(200);
      expect(second.body).toBe(first.body);
      expect(hsmSigns()).toBe(before + 1);
    });

    it('refuses the same key with a different request (409 CONFLICT), without signing', async () => {
      await sign(keyNames['EC-256'], {
        digest: sha('EC-256', 'idem-2a').toString('base64'),
        hashAlgorithm: 'SHA-256',
        idempotencyKey: 'idem-2',
      });
      const before = hsmSigns();
      const other = await sign(keyNames['EC-256'], {
        digest: sha('EC-256', 'idem-2b').toString('base64'),
        hashAlgorithm: 'SHA-256',
        idempotencyKey: 'idem-2',
      });
      expect(other.statusCode).toBe(409);
      expect(other.json().error.code).toBe('CONFLICT');
      expect(hsmSigns()).toBe(before);
    });

    it('lets concurrent duplicates sign only once, all getting the same answer', async () => {
      const request = {
        digest: sha('EC-256', 'idem-3').toString('base64'),
        hashAlgorithm: 'SHA-256',
        idempotencyKey: 'idem-3',
      };
      const before = hsmSigns();
      const responses = await Promise.all(Array.from({ length: 12 }, () => sign(keyNames['EC-256'], request)));
      expect(responses.map((r) => r.statusCode)).toEqual(Array(12).fill(200));
      expect(new Set(responses.map((r) => r.body)).size).toBe(1);
      expect(hsmSigns()).toBe(before + 1);
    });

    it('keeps keys of different tokens apart', async () => {
      const request = {
        digest: sha('EC-256', 'idem-4').toString('base64'),
        hashAlgorithm: 'SHA-256',
        idempotencyKey: 'shared-key',
      };
      const a = await sign(keyNames['EC-256'], request, tokens.signer.token);
      const b = await sign(keyNames['EC-256'], request, tokens.signer2.token);
      expect(a.statusCode).toBe(200);
      expect(b.statusCode).toBe(200);
      expect(a.json().signature).not.toBe(b.json().signature); // ECDSA is randomised: two signings
    });

    it('frees the key when the request was refused, so a corrected retry signs', async () => {
      const jws = notarySigningInput('EC-256', 'idem-5', new Date());
      const refused = await sign('stage-prod', {
        payload: Buffer.from(jws.signingInput).toString('base64'),
        hashAlgorithm: 'SHA-256',
        idempotencyKey: 'idem-5',
      });
      expect(refused.statusCode).toBe(409);
      expect(refused.json().error.code).toBe('PROMOTION_REQUIRED');
      const rows = await query(t.database.url, `SELECT 1 FROM sign_idempotency WHERE idempotency_key = 'idem-5'`);
      expect(rows).toHaveLength(0);
    });
  });

  describe('Idempotency-Key header (what a balancer retries on: deploy/nginx/signet.conf)', () => {
    const withHeader = (key: string, body: unknown, header: string) =>
      t.app.inject({
        method: 'POST',
        url: `/v1/keys/${key}/sign`,
        headers: { ...auth(tokens.signer.token), 'content-type': 'application/json', 'idempotency-key': header },
        payload: JSON.stringify(body),
      });

    it("signs when the header names the body's idempotencyKey, and a retry gets the same answer", async () => {
      const request = {
        digest: sha('EC-256', 'idem-header-1').toString('base64'),
        hashAlgorithm: 'SHA-256',
        idempotencyKey: 'idem-header-1',
      };
      const before = hsmSigns();
      const first = await withHeader(keyNames['EC-256'], request, 'idem-header-1');
      const retry = await withHeader(keyNames['EC-256'], request, 'idem-header-1');
      expect(first.statusCode).toBe(200);
      expect(retry.body).toBe(first.body);
      expect(hsmSigns()).toBe(before + 1);
    });

    it.each([
      [
        'a body without idempotencyKey',
        { digest: sha('EC-256', 'idem-header-2').toString('base64'), hashAlgorithm: 'SHA-256' },
      ],
      [
        'a different idempotencyKey',
        {
          digest: sha('EC-256', 'idem-header-3').toString('base64'),
          hashAlgorithm: 'SHA-256',
          idempotencyKey: 'other',
        },
      ],
    ])(
      'refuses the header with %s (400 VALIDATION_ERROR), without signing: a retry would sign twice',
      async (_, request) => {
        const before = hsmSigns();
        const refused = await withHeader(keyNames['EC-256'], request, 'idem-header-x');
        expect(refused.statusCode).toBe(400);
        expect(refused.json().error).toMatchObject({ code: 'VALIDATION_ERROR', details: { field: 'idempotencyKey' } });
        expect(hsmSigns()).toBe(before);
      },
    );
  });

  describe('promotion (requires)', () => {
    const digestBody = (label: string, artifact?: string) => ({
      digest: sha('EC-256', label).toString('base64'),
      hashAlgorithm: 'SHA-256',
      ...(artifact ? { artifact: { digest: artifact } } : {}),
    });
    const payloadBody = (bytes: Buffer | string, extra: Record<string, unknown> = {}) => ({
      payload: Buffer.from(bytes).toString('base64'),
      hashAlgorithm: 'SHA-256',
      ...extra,
    });
    /** A JWS signing input from header and payload JSON written by hand (hostile spellings). */
    const handJws = (headerJson: string, payloadJson: string) =>
      `${Buffer.from(headerJson).toString('base64url')}.${Buffer.from(payloadJson).toString('base64url')}`;
    const HEADER = JSON.stringify({
      alg: 'ES256',
      crit: ['io.cncf.notary.signingScheme'],
      cty: 'application/vnd.cncf.notary.payload.v1+json',
      'io.cncf.notary.signingScheme': 'notary.x509',
      'io.cncf.notary.signingTime': '2026-12-07T00:00:00Z',
    });
    const descriptor = (digest: string) =>
      `{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"${digest}","size":528}`;
    const signRows = (signature: string) =>
      query<{ data: Record<string, unknown> }>(
        t.database.url,
        `SELECT data FROM audit_events WHERE type = 'sign' AND data->>'signature' = $1`,
        [signature],
      );

    it('refuses a key with requires an opaque payload (400 ARTIFACT_REQUIRED), even with a client-sent artifact', async () => {
      const before = hsmSigns();
      const response = await sign(
        'stage-prod',
        payloadBody('no artifact', { artifact: { digest: artifactDigest('claimed') } }),
      );
      expect(response.statusCode).toBe(400);
      expect(response.json().error.code).toBe('ARTIFACT_REQUIRED');
      expect(hsmSigns()).toBe(before);
    });

    it('refuses until the required key signed that artifact, naming the missing key; then signs', async () => {
      const prod = (label: string) =>
        notarySigningInput(
          'EC-256',
          'image-promote',
          new Date(Date.parse('2026-12-01T00:00:00Z') + label.length * 1000),
        );
      const image = prod('x').digest;
      const refused = await sign('stage-prod', payloadBody(prod('prod 1').signingInput));
      expect(refused.statusCode).toBe(409);
      expect(refused.json().error).toEqual({
        code: 'PROMOTION_REQUIRED',
        message: expect.stringContaining('"stage-test"'),
        details: { key: 'stage-prod', artifact: image, missing: ['stage-test'] },
      });

      // A signature of another artifact by the required key does not count.
      expect(
        (await sign('stage-test', payloadBody(notarySigningInput('EC-256', 'other-image', new Date()).signingInput)))
          .statusCode,
      ).toBe(200);
      expect((await sign('stage-prod', payloadBody(prod('prod 22').signingInput))).statusCode).toBe(409);

      expect((await sign('stage-test', payloadBody(prod('test 1').signingInput))).statusCode).toBe(200);
      const allowed = await sign('stage-prod', payloadBody(prod('prod 333').signingInput));
      expect(allowed.statusCode).toBe(200);
      expect(allowed.json().artifact).toEqual({
        digest: image,
        mediaType: 'application/vnd.oci.image.manifest.v1+json',
        size: prod('x').size,
      });
      expect((await signRows(allowed.json().signature))[0].data).toMatchObject({
        artifact: { digest: image },
        artifactSource: 'payload',
        mode: 'payload',
      });
    });

    describe('reads the artifact from the bytes it signs, never from the client (issue #17)', () => {
      // The test key signed image X (from its payload). Every request below tries to get the prod
      // key to sign something Notation's verifier reads as image Y, which the test key never signed.
      const X = notarySigningInput('EC-256', 'issue-17-image-X', new Date('2026-12-01T00:00:00Z'));
      const Y = notarySigningInput('EC-256', 'issue-17-image-Y', new Date('2026-12-01T00:00:00Z'));

      beforeAll(async () => {
        expect((await sign('stage-test', payloadBody(X.signingInput))).statusCode).toBe(200);
      });

      async function refusedWithoutSigning(body: unknown): Promise<{ status: number; code: string }> {
        const before = hsmSigns();
        const response = await sign('stage-prod', body);
        expect(hsmSigns()).toBe(before);
        return { status: response.statusCode, code: response.json().error?.code };
      }

      it('digest mode: the SHA-256 of the JWS for Y with a claimed artifact X → 400 PAYLOAD_REQUIRED (was 200)', async () => {
        const body = {
          digest: sha('EC-256', Y.signingInput).toString('base64'),
          hashAlgorithm: 'SHA-256',
          artifact: { digest: X.digest },
        };
        expect(await refusedWithoutSigning(body)).toEqual({ status: 400, code: 'PAYLOAD_REQUIRED' });
      });

      it('payload mode: a space before the protected header no longer makes the JWS opaque; Y is read and refused (was 200 on the claim X)', async () => {
        const spaced = handJws(` ${HEADER}`, `{"targetArtifact":${descriptor(Y.digest)}}`);
        expect(await refusedWithoutSigning(payloadBody(spaced, { artifact: { digest: X.digest } }))).toEqual({
          status: 400,
          code: 'VALIDATION_ERROR',
        });
        const response = await sign('stage-prod', payloadBody(spaced));
        expect(response.statusCode).toBe(409);
        expect(response.json().error.details).toEqual({
          key: 'stage-prod',
          artifact: Y.digest,
          missing: ['stage-test'],
        });
      });

      it.each([
        [
          'targetArtifact X then TargetArtifact Y (was 200: Signet read X, Go reads Y)',
          `{"targetArtifact":${descriptor(X.digest)},"TargetArtifact":${descriptor(Y.digest)}}`,
        ],
        [
          'the same name twice (readers differ on first or last)',
          `{"targetArtifact":${descriptor(X.digest)},"targetArtifact":${descriptor(Y.digest)}}`,
        ],
        [
          'digest X then Digest Y in the descriptor (was 200)',
          `{"targetArtifact":{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"${X.digest}","Digest":"${Y.digest}","size":528}}`,
        ],
        [
          'digest X then dige\u017ft Y (was 200: U+017F folds to s in Go)',
          `{"targetArtifact":{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"${X.digest}","dige\u017ft":"${Y.digest}","size":528}}`,
        ],
        [
          'an escaped name: target\\u0041rtifact Y after targetArtifact X',
          `{"targetArtifact":${descriptor(X.digest)},"target\\u0041rtifact":${descriptor(Y.digest)}}`,
        ],
      ])('payload mode: %s → 400 AMBIGUOUS_PAYLOAD', async (_label, payloadJson) => {
        expect(await refusedWithoutSigning(payloadBody(handJws(HEADER, payloadJson)))).toEqual({
          status: 400,
          code: 'AMBIGUOUS_PAYLOAD',
        });
      });

      it('a client-sent artifact on a key without requires is recorded as claimed and is no evidence for promotion (was evidence)', async () => {
        const Z = notarySigningInput('EC-256', 'issue-17-image-Z', new Date('2026-12-01T00:00:00Z'));
        // The test key signs some digest, claiming it is image Z.
        const claimed = await sign('stage-test', digestBody('not image Z at all', Z.digest));
        expect(claimed.statusCode).toBe(200);
        expect((await signRows(claimed.json().signature))[0].data).toMatchObject({
          artifact: { digest: Z.digest },
          artifactSource: 'claimed',
          mode: 'digest',
        });
        const response = await sign('stage-prod', payloadBody(Z.signingInput));
        expect(response.statusCode).toBe(409);
        expect(response.json().error.code).toBe('PROMOTION_REQUIRED');
      });

      it('COSE Sig_structure (notation --signature-format cose): the artifact of its Notary payload is read and promoted like a JWS one', async () => {
        const when = new Date('2026-12-02T00:00:00Z');
        const coseX = notaryCoseSigStructure('EC-256', 'issue-17-image-X', when);
        expect(coseX.digest).toBe(X.digest);
        const allowed = await sign('stage-prod', payloadBody(coseX.sigStructure));
        expect(allowed.statusCode).toBe(200);
        expect(allowed.json().artifact).toEqual({
          digest: X.digest,
          mediaType: 'application/vnd.oci.image.manifest.v1+json',
          size: X.size,
        });
        expect(
          opensslVerifiesMessage(
            path.join(dir, 'cose-prod'),
            'EC-256',
            coseX.sigStructure,
            allowed.json().signature,
            allowed.json().certificateChain,
          ),
        ).toBe(true);
        expect((await signRows(allowed.json().signature))[0].data).toMatchObject({
          artifactSource: 'payload',
          mode: 'payload',
        });

        const coseY = notaryCoseSigStructure('EC-256', 'issue-17-image-Y', when);
        const refused = await sign('stage-prod', payloadBody(coseY.sigStructure));
        expect(refused.statusCode).toBe(409);
        expect(refused.json().error.details.artifact).toBe(Y.digest);
        const ambiguous = notaryCoseSigStructure('EC-256', 'any', when, {
          payloadJson: `{"targetArtifact":${descriptor(X.digest)},"TargetArtifact":${descriptor(Y.digest)}}`,
        });
        expect(await refusedWithoutSigning(payloadBody(ambiguous.sigStructure))).toEqual({
          status: 400,
          code: 'AMBIGUOUS_PAYLOAD',
        });
        const trailing = Buffer.concat([coseX.sigStructure, Buffer.from([0])]);
        expect(await refusedWithoutSigning(payloadBody(trailing))).toEqual({ status: 400, code: 'AMBIGUOUS_PAYLOAD' });
      });
    });
  });

  describe('which version signs', () => {
    it('stops signing with a version whose change another replica announced on KEYS_CHANNEL', async () => {
      await createKey('replica-key', 'EC-256');
      const body = { digest: sha('EC-256', 'replica').toString('base64'), hashAlgorithm: 'SHA-256' };
      expect((await sign('replica-key', body, admin)).statusCode).toBe(200); // now cached
      // Another replica (here: a plain connection) retires the version and announces it.
      const client = new Client({ connectionString: t.database.url });
      await client.connect();
      try {
        await client.query('BEGIN');
        await client.query(
          `UPDATE key_versions SET state = 'retired', retired_at = now() WHERE key_id = (SELECT id FROM signing_keys WHERE name = 'replica-key')`,
        );
        await client.query('SELECT pg_notify($1, $2)', [KEYS_CHANNEL, 'replica-key']);
        await client.query('COMMIT');
      } finally {
        await client.end();
      }
      let status = 200;
      for (let i = 0; i < 100 && status === 200; i++) {
        status = (await sign('replica-key', body, admin)).statusCode;
        if (status === 200) await new Promise((resolve) => setTimeout(resolve, 50));
      }
      const response = await sign('replica-key', body, admin);
      expect(response.statusCode).toBe(409);
      expect(response.json().error.code).toBe('NO_ACTIVE_VERSION');
    });

    it('never signs again with a revoked version, from the first request after the revocation returned', async () => {
      await createKey('revoke-me', 'EC-256');
      const body = { digest: sha('EC-256', 'revoke').toString('base64'), hashAlgorithm: 'SHA-256' };
      const signed = await sign('revoke-me', body, admin);
      expect(signed.statusCode).toBe(200);
      const serial = (await t.app.inject({ method: 'GET', url: '/v1/keys/revoke-me', headers: auth(admin) })).json()
        .versions[0].serial;
      const revoked = await t.app.inject({
        method: 'POST',
        url: `/v1/certificates/${serial}/revoke`,
        headers: auth(admin),
        payload: { reason: 'keyCompromise' },
      });
      expect(revoked.statusCode).toBe(200);
      const response = await sign('revoke-me', body, admin);
      expect(response.statusCode).toBe(409);
      expect(response.json().error.code).toBe('NO_ACTIVE_VERSION');
    });

    it('exposes the cache contract rotation relies on', () => {
      const cache = t.app.get(ActiveKeyCache);
      expect(KEYS_CHANNEL).toBe('signet_keys');
      expect(typeof cache.invalidate).toBe('function');
      expect(typeof cache.announce).toBe('function');
    });
  });

  it('counts signatures by key and outcome in /metrics', async () => {
    const response = await t.app.inject({ method: 'GET', url: '/metrics', headers: auth(admin) });
    expect(response.statusCode).toBe(200);
    expect(response.body).toMatch(
      new RegExp(`signet_signatures_total\\{key="${keyNames['EC-256']}",outcome="signed"[^}]*\\} [1-9]`),
    );
    expect(response.body).toMatch(
      /signet_signatures_total\{key="stage-prod",outcome="promotion_required"[^}]*\} [1-9]/,
    );
    expect(response.body).toContain('signet_sign_duration_seconds_bucket');
  });

  it('never writes a token into the logs', () => {
    const logs = t.logs.join('');
    for (const { token } of Object.values(tokens)) expect(logs).not.toContain(token);
    expect(logs).not.toContain(admin);
  });
});
