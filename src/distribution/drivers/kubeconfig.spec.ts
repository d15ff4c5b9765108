import { parseKubeconfig } from './kubeconfig';

describe(parseKubeconfig.name, () => {
  const ca = Buffer.from('-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n').toString('base64');
  const json = (user: Record<string, unknown>, cluster: Record<string, unknown> = {}) =>
    JSON.stringify({
      'current-context': 'prod',
      contexts: [
        { name: 'dev', context: { cluster: 'dev', user: 'dev' } },
        { name: 'prod', context: { cluster: 'prod', user: 'signet', namespace: 'trust' } },
      ],
      clusters: [
        {
          name: 'prod',
          cluster: { server: 'https://api.prod.example.com:6443', 'certificate-authority-data': ca, ...cluster },
        },
      ],
      users: [{ name: 'signet', user }],
    });

  it('resolves the current context: server, CA, token, namespace', () => {
    expect(parseKubeconfig(json({ token: 'secret-token' }))).toEqual({
      server: new URL('https://api.prod.example.com:6443'),
      caPem: Buffer.from(ca, 'base64').toString('utf8'),
      token: 'secret-token',
      namespace: 'trust',
    });
  });

  it('reads YAML as kubectl writes it', () => {
    const yaml = [
      'apiVersion: v1',
      'clusters:',
      '- cluster:',
      `    certificate-authority-data: ${ca}`,
      '    server: https://10.0.0.1:6443',
      '  name: c',
      'contexts:',
      '- context:',
      '    cluster: c',
      '    user: u',
      '  name: ctx',
      'current-context: ctx',
      'kind: Config',
      'preferences: {}',
      'users:',
      '- name: u',
      '  user:',
      '    token: abc.def',
    ].join('\n');
    expect(parseKubeconfig(yaml)).toMatchObject({ server: new URL('https://10.0.0.1:6443'), token: 'abc.def' });
  });

  it('refuses exec plugins and file paths, naming the field but not the value', () => {
    expect(() => parseKubeconfig(json({ exec: { command: 'aws' } }))).toThrow("user 'exec' is not supported");
    expect(() => parseKubeconfig(json({ token: 'x' }, { 'certificate-authority': '/etc/ca.pem' }))).toThrow(
      "'certificate-authority'",
    );
  });

  it('never echoes the document in errors', () => {
    const secret = 'super-secret-token-value';
    for (const broken of [
      `{"users": "${secret}"`,
      `users: [${secret}`,
      json({ token: secret }).replace('"prod"', '"missing"'),
    ]) {
      try {
        parseKubeconfig(broken);
        throw new Error('expected a failure');
      } catch (error) {
        expect(String((error as Error).message)).not.toContain(secret);
        expect(JSON.stringify((error as { details?: unknown }).details ?? {})).not.toContain(secret);
      }
    }
  });
});
