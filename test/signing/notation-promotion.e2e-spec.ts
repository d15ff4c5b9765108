import * as fs from 'node:fs';
import * as path from 'node:path';
import { KEY_SPEC_INFO } from '../../src/pki/key-spec';
import { buildPlugin, generateSignatureRequest, runPlugin } from '../notation-plugin/support/notation-driver';
import { ensureBuilt, freePort, ServerProcess, tempDir } from '../support/server-process';
import {
  notaryCoseSigStructure,
  notarySigningInput,
  opensslVerifiesChain,
  opensslVerifiesMessage,
  SUBJECT,
} from './support/signing-kit';

/**
 * The real notation-signet executable, driven as Notation drives it, against a real Signet server
 * process on embedded defaults (embedded PostgreSQL, SoftHSM2 token, dev CA hierarchy, admin token
 * written to <dataDir>/admin.token). A dev → test → prod promotion: the prod key requires the test
 * key. Signatures are checked with OpenSSL's CLI against the leaf of the chain the plugin returned.
 */
describe('notation-signet → Signet: payload signing and promotion end to end', () => {
  let server: ServerProcess;
  let dir: string;
  let admin: string;
  let config: Record<string, string>;
  let signerToken: string;

  const api = async (
    method: string,
    route: string,
    body?: unknown,
  ): Promise<{ status: number; json: Record<string, unknown> }> => {
    const response = await fetch(`${server.url}${route}`, {
      method,
      headers: {
        authorization: `Bearer ${admin}`,
        ...(body === undefined ? {} : { 'content-type': 'application/json' }),
      },
      body: body === undefined ? undefined : JSON.stringify(body),
    });
    return { status: response.status, json: (await response.json()) as Record<string, unknown> };
  };

  const generate = (keyId: string, signingInput: string) =>
    runPlugin('generate-signature', generateSignatureRequest('EC-256', keyId, config, signingInput));

  beforeAll(async () => {
    ensureBuilt();
    buildPlugin();
    dir = tempDir('notation-promotion-');
    server = new ServerProcess(await freePort(), {
      SIGNET_DATA_DIR: path.join(dir, 'data'),
      SIGNET_LOG_LEVEL: 'warn',
      SIGNET_AUDIT_CHECKPOINT_INTERVAL_SECONDS: '0',
    });
    await server.waitReady(120_000);
    admin = fs.readFileSync(path.join(dir, 'data', 'admin.token'), 'utf8').trim();
    for (const [name, requires] of [
      ['test-release', []],
      ['prod-release', ['test-release']],
    ] as const) {
      const created = await api('POST', '/v1/keys', {
        name,
        keySpec: 'EC-256',
        subject: { ...SUBJECT, CN: name },
        requires,
      });
      expect(created.status).toBe(201);
    }
    const token = await api('POST', '/v1/tokens', {
      name: 'pipeline',
      role: 'signer',
      keys: ['test-release', 'prod-release'],
    });
    expect(token.status).toBe(201);
    signerToken = token.json.token as string;
    const tokenFile = path.join(dir, 'signet-token');
    fs.writeFileSync(tokenFile, `${signerToken}\n`, { mode: 0o600 });
    config = { url: server.url, token_file: tokenFile };
  }, 300_000);

  afterAll(async () => {
    if (!server) return;
    server.kill('SIGTERM');
    let timer: NodeJS.Timeout | undefined;
    await Promise.race([server.exited, new Promise((resolve) => (timer = setTimeout(resolve, 30_000)))]);
    clearTimeout(timer);
  });

  it('test key signs image A; the prod key then signs a different payload for image A, and refuses image B naming the missing key', async () => {
    const imageA = 'registry.example.com/team/app:1.0';
    const imageB = 'registry.example.com/team/app:1.1';
    const t0 = new Date(Date.now() - 60_000);

    // 1. The test key signs image A (payload mode: Signet reads targetArtifact from the JWS).
    const testPayload = notarySigningInput('EC-256', imageA, t0);
    const tested = await generate('test-release', testPayload.signingInput);
    expect({ code: tested.code, stderr: tested.stderr }).toEqual({ code: 0, stderr: '' });
    expect(tested.json).toEqual({
      keyId: 'test-release',
      signature: expect.any(String),
      signingAlgorithm: KEY_SPEC_INFO['EC-256'].signingAlgorithm,
      certificateChain: expect.any(Array),
    });
    const testChain = tested.json.certificateChain as string[];
    expect(
      opensslVerifiesMessage(
        path.join(dir, 'test-a'),
        'EC-256',
        Buffer.from(testPayload.signingInput),
        tested.json.signature as string,
        testChain,
      ),
    ).toBe(true);
    expect(opensslVerifiesChain(path.join(dir, 'test-chain'), testChain).ok).toBe(true);

    // 2. The prod key signs image A from a different payload (later signing time): allowed.
    const prodPayloadA = notarySigningInput('EC-256', imageA, new Date(t0.getTime() + 30_000));
    expect(prodPayloadA.signingInput).not.toBe(testPayload.signingInput);
    expect(prodPayloadA.digest).toBe(testPayload.digest);
    const prodA = await generate('prod-release', prodPayloadA.signingInput);
    expect({ code: prodA.code, stderr: prodA.stderr }).toEqual({ code: 0, stderr: '' });
    const prodChain = prodA.json.certificateChain as string[];
    expect(prodChain[0]).not.toBe(testChain[0]); // another key, another leaf
    expect(
      opensslVerifiesMessage(
        path.join(dir, 'prod-a'),
        'EC-256',
        Buffer.from(prodPayloadA.signingInput),
        prodA.json.signature as string,
        prodChain,
      ),
    ).toBe(true);
    const verified = opensslVerifiesChain(path.join(dir, 'prod-chain'), prodChain);
    expect(verified.out).toContain('leaf.pem: OK');

    // 3. The prod key refuses image B, which the test key never signed.
    const prodB = await generate(
      'prod-release',
      notarySigningInput('EC-256', imageB, new Date(t0.getTime() + 40_000)).signingInput,
    );
    expect(prodB.code).toBe(1);
    expect(prodB.stdout).toBe('');
    expect(prodB.json.errorCode).toBe('VALIDATION_ERROR');
    expect(prodB.json.errorMessage).toContain('PROMOTION_REQUIRED');
    expect(prodB.json.errorMessage).toContain('test-release');
    expect(prodB.json.errorMetadata).toMatchObject({ httpStatus: '409', signetErrorCode: 'PROMOTION_REQUIRED' });

    // The audit log names the artifact of each signature, from the JWS the plugin sent.
    const audit = await fetch(`${server.url}/v1/audit?type=sign&limit=100`, {
      headers: { authorization: `Bearer ${admin}` },
    });
    expect(audit.status).toBe(200);
    const events = (
      (await audit.json()) as {
        events: Array<{ subject: string; data: Record<string, unknown>; actor: Record<string, unknown> }>;
      }
    ).events;
    expect(events.map((e) => [e.subject, (e.data.artifact as { digest?: string } | null)?.digest])).toEqual([
      ['test-release', testPayload.digest],
      ['prod-release', testPayload.digest],
    ]);
    expect(events.every((e) => e.data.mode === 'payload' && e.actor.tokenName === 'pipeline')).toBe(true);

    // The token never appears in what the plugin printed or the server logged.
    for (const output of [tested.stdout, tested.stderr, prodA.stdout, prodB.stderr, server.text()])
      expect(output).not.toContain(signerToken);
  });

  it('COSE (notation sign --signature-format cose): the prod key signs the Sig_structure of image A, refuses image B and a payload Go would read as B', async () => {
    const imageA = 'registry.example.com/team/app:1.0';
    const when = new Date(Date.now() - 30_000);
    // The plugin passes the bytes through: a COSE Sig_structure is binary, sent as latin1 text by the driver.
    const coseA = notaryCoseSigStructure('EC-256', imageA, when);
    const prodA = await generate('prod-release', coseA.sigStructure.toString('latin1'));
    expect({ code: prodA.code, stderr: prodA.stderr }).toEqual({ code: 0, stderr: '' });
    expect(
      opensslVerifiesMessage(
        path.join(dir, 'cose-prod-a'),
        'EC-256',
        coseA.sigStructure,
        prodA.json.signature as string,
        prodA.json.certificateChain as string[],
      ),
    ).toBe(true);

    const coseB = notaryCoseSigStructure('EC-256', 'registry.example.com/team/app:1.1', when);
    const prodB = await generate('prod-release', coseB.sigStructure.toString('latin1'));
    expect(prodB.code).toBe(1);
    expect(prodB.json.errorMetadata).toMatchObject({ httpStatus: '409', signetErrorCode: 'PROMOTION_REQUIRED' });

    const descriptor = (digest: string) =>
      `{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"${digest}","size":${coseA.size}}`;
    const hostile = notaryCoseSigStructure('EC-256', imageA, when, {
      payloadJson: `{"targetArtifact":${descriptor(coseA.digest)},"TargetArtifact":${descriptor(coseB.digest)}}`,
    });
    const refused = await generate('prod-release', hostile.sigStructure.toString('latin1'));
    expect(refused.code).toBe(1);
    expect(refused.json.errorMetadata).toMatchObject({ httpStatus: '400', signetErrorCode: 'AMBIGUOUS_PAYLOAD' });
  });
});
