import { DomainError } from '../../common/errors';
import { createTrustTarget } from './trust-target.factory';
import { TrustTargetOptions } from './trust-target';

describe(createTrustTarget.name, () => {
  const made: Array<{ close(): Promise<void> }> = [];
  afterAll(async () => {
    await Promise.all(made.map((t) => t.close()));
  });

  it('builds one driver per kind', () => {
    const targets = [
      createTrustTarget({
        kind: 'oci-registry',
        endpoint: 'https://registry.example.com',
        repository: 'signet/truststore',
        allowedHosts: [],
      }),
      createTrustTarget({
        kind: 'harbor',
        endpoint: 'https://harbor.example.com',
        project: 'platform',
        repository: 'truststore',
        allowedHosts: [],
      }),
      createTrustTarget({
        kind: 'kubernetes',
        endpoint: 'https://api.example.com:6443',
        namespace: 'signet',
        credentials: { token: 't' },
        allowedHosts: [],
      }),
    ];
    made.push(...targets);
    expect(targets.map((t) => [t.kind, t.description])).toEqual([
      ['oci-registry', 'oci-registry registry.example.com/signet/truststore'],
      ['harbor', 'harbor harbor.example.com/platform/truststore'],
      ['kubernetes', 'kubernetes api.example.com:6443 signet/signet-truststore'],
    ]);
  });

  it.each<[string, unknown]>([
    ['kind', { kind: 'ftp', endpoint: 'https://x', allowedHosts: [] }],
    ['endpoint', { kind: 'oci-registry', endpoint: 'registry.example.com', repository: 'a', allowedHosts: [] }],
    [
      'endpoint',
      { kind: 'oci-registry', endpoint: 'https://registry.example.com/v2/', repository: 'a', allowedHosts: [] },
    ],
    [
      'repository',
      { kind: 'oci-registry', endpoint: 'https://r.example.com', repository: 'Upper/Case', allowedHosts: [] },
    ],
    [
      'credentials',
      {
        kind: 'oci-registry',
        endpoint: 'https://r.example.com',
        repository: 'a',
        credentials: { token: 'x' },
        allowedHosts: [],
      },
    ],
    [
      'project',
      { kind: 'harbor', endpoint: 'https://h.example.com', project: 'Bad Project', repository: 'a', allowedHosts: [] },
    ],
    [
      'namespace',
      { kind: 'kubernetes', endpoint: 'https://k.example.com', namespace: 'Not_A_Label', allowedHosts: [] },
    ],
    [
      'requestTimeoutMs',
      {
        kind: 'oci-registry',
        endpoint: 'https://r.example.com',
        repository: 'a',
        allowedHosts: [],
        requestTimeoutMs: 0,
      },
    ],
    [
      'allowedHosts[0]',
      { kind: 'oci-registry', endpoint: 'https://r.example.com', repository: 'a', allowedHosts: ['http://x/y'] },
    ],
    [
      'tls.caPem',
      {
        kind: 'oci-registry',
        endpoint: 'https://r.example.com',
        repository: 'a',
        allowedHosts: [],
        tls: { caPem: 'nope' },
      },
    ],
  ])("rejects a bad '%s' with a validation error naming it", (field, options) => {
    expect(() => createTrustTarget(options as TrustTargetOptions)).toThrow(
      expect.objectContaining({ code: 'VALIDATION_ERROR', details: { field } }),
    );
  });

  it('never puts credentials from the endpoint or a kubeconfig into its errors', () => {
    const secret = 's3cr3t-value';
    const attempts: unknown[] = [
      { kind: 'oci-registry', endpoint: `https://user:${secret}@r.example.com`, repository: 'a', allowedHosts: [] },
      {
        kind: 'kubernetes',
        endpoint: 'https://other.example.com',
        namespace: 'a',
        allowedHosts: [],
        credentials: {
          kubeconfig: JSON.stringify({
            'current-context': 'c',
            contexts: [{ name: 'c', context: { cluster: 'c', user: 'u' } }],
            clusters: [{ name: 'c', cluster: { server: 'https://k.example.com' } }],
            users: [{ name: 'u', user: { token: secret } }],
          }),
        },
      },
    ];
    for (const options of attempts) {
      let error: unknown;
      try {
        createTrustTarget(options as TrustTargetOptions);
      } catch (e) {
        error = e;
      }
      expect(error).toBeInstanceOf(DomainError);
      expect(`${(error as Error).message} ${JSON.stringify((error as DomainError).details)}`).not.toContain(secret);
    }
  });
});
