import { DomainError } from '../common/errors';
import {
  driverOptions,
  endpointOrigin,
  LOOPBACK_HOSTS,
  settingsFromInput,
  targetLayers,
  validateEndpoint,
  validateTargetHosts,
} from './target-definition';
import { redactSecrets } from './target-credentials';

describe('target definitions', () => {
  it('keeps the settings of each kind and refuses fields of another kind, naming them', () => {
    expect(settingsFromInput('oci-registry', { repository: 'signet/truststore' }, 'op')).toEqual({
      repository: 'signet/truststore',
    });
    expect(
      settingsFromInput('harbor', { repository: 'platform/truststore', contentTrust: { notation: true } }, 'op'),
    ).toEqual({ project: 'platform', repository: 'truststore', contentTrust: { notation: true } });
    expect(settingsFromInput('harbor', { project: 'platform', repository: 'truststore' }, 'op')).toEqual({
      project: 'platform',
      repository: 'truststore',
    });
    expect(
      settingsFromInput('kubernetes', { namespace: 'default', ratify: { keyManagementProviderName: 'signet' } }, 'op'),
    ).toEqual({ namespace: 'default', ratify: { keyManagementProviderName: 'signet' } });
    expect(() => settingsFromInput('oci-registry', {}, 'op')).toThrow(/'repository' is required/);
    expect(() => settingsFromInput('harbor', { repository: 'truststore' }, 'op')).toThrow(/'project' is required/);
    expect(() => settingsFromInput('oci-registry', { repository: 'a/b', namespace: 'default' }, 'op')).toThrow(
      /'namespace' does not apply/,
    );
    expect(() => settingsFromInput('kubernetes', { namespace: 'default', ratify: { name: 'x' } }, 'op')).toThrow(
      /'ratify'/,
    );
    expect(() => settingsFromInput('oci-registry', { repository: 'a/b', formats: ['pem', 'jks'] }, 'op')).toThrow(
      /'formats'/,
    );
    expect(() =>
      settingsFromInput(
        'kubernetes',
        { namespace: 'default', ratify: { keyManagementProviderName: 'x' }, formats: ['pem'] },
        'op',
      ),
    ).toThrow(/'roots'/);
    expect(() => settingsFromInput('oci-registry', { repository: 'a/b', tls: { ca: 'x' } }, 'op')).toThrow(DomainError);
  });

  it('ratify.verifier: stored when true, needs the ratify layer, and hands the driver its title', () => {
    const settings = settingsFromInput(
      'kubernetes',
      { namespace: 'default', ratify: { keyManagementProviderName: 'signet', verifier: true } },
      'op',
    );
    expect(settings.ratify).toEqual({ keyManagementProviderName: 'signet', verifier: true });
    expect(
      settingsFromInput(
        'kubernetes',
        { namespace: 'default', ratify: { keyManagementProviderName: 'signet', verifier: false } },
        'op',
      ).ratify,
    ).toEqual({ keyManagementProviderName: 'signet' });
    expect(() =>
      settingsFromInput(
        'kubernetes',
        { namespace: 'default', ratify: { keyManagementProviderName: 'x', verifier: 'yes' } },
        'op',
      ),
    ).toThrow(/'ratify'/);
    expect(() =>
      settingsFromInput(
        'kubernetes',
        { namespace: 'default', ratify: { keyManagementProviderName: 'x', verifier: true }, formats: ['roots'] },
        'op',
      ),
    ).toThrow(/'ratify'/);
    const options = driverOptions({ kind: 'kubernetes', endpoint: 'https://api.cluster:6443', settings }, undefined, {
      globalAllowedHosts: [],
      allowLoopback: false,
      requestTimeoutMs: 1,
    });
    expect(options).toMatchObject({
      ratify: {
        keyManagementProviderName: 'signet',
        pemLayerTitle: 'roots.pem',
        verifierLayerTitle: 'ratify-kmp.yaml',
      },
    });
  });

  it('pushes every layer unless formats narrow them', () => {
    expect(targetLayers({})).toEqual([
      'pem',
      'notation',
      'pkcs12',
      'ratify',
      'kyverno',
      'kyverno-ivp',
      'trust-manager',
      'roots',
    ]);
    expect(targetLayers({ formats: ['roots'] })).toEqual(['roots']);
  });

  it('refuses loopback endpoints unless configuration allows them', () => {
    const off = { globalAllowedHosts: [], allowLoopback: false };
    const on = { globalAllowedHosts: [], allowLoopback: true };
    for (const host of [
      '127.0.0.1',
      '127.1.2.3',
      'localhost',
      'api.localhost',
      '[::1]',
      '2130706433',
      '[::ffff:127.0.0.1]',
    ]) {
      expect(() => validateEndpoint(`http://${host}:5000`, off, 'op')).toThrow(
        expect.objectContaining({ code: 'ENDPOINT_NOT_ALLOWED' }),
      );
      expect(validateEndpoint(`http://${host}:5000`, on, 'op')).toBe(`http://${host}:5000`);
    }
    for (const host of ['10.0.0.1', 'registry.example.com', '[fd00::1]'])
      expect(validateEndpoint(`http://${host}`, off, 'op')).toBe(`http://${host}`);
    expect(() => validateEndpoint('not a url', on, 'op')).toThrow(/'endpoint'/);
    expect(() => validateEndpoint('ftp://registry.example.com', on, 'op')).toThrow(/'endpoint'/);
  });

  it('with an allowlist, accepts only endpoints it covers, loopback included', () => {
    const context = {
      globalAllowedHosts: ['registry.example.com', '*.corp.example', 'harbor.example.com:8443', '127.0.0.1:5000'],
      allowLoopback: true,
    };
    for (const endpoint of [
      'https://registry.example.com',
      'https://eu.corp.example:5000',
      'https://harbor.example.com:8443',
      'http://127.0.0.1:5000',
    ]) {
      expect(validateEndpoint(endpoint, context, 'op')).toBe(endpoint);
    }
    for (const endpoint of [
      'https://attacker.example.net',
      'https://corp.example',
      'https://harbor.example.com',
      'https://10.0.0.5',
      'http://127.0.0.1:5001',
      'http://localhost:5000',
    ]) {
      expect(() => validateEndpoint(endpoint, context, 'op')).toThrow(
        expect.objectContaining({
          code: 'ENDPOINT_NOT_ALLOWED',
          details: expect.objectContaining({ field: 'endpoint' }),
        }),
      );
    }
    expect(() => validateEndpoint('http://127.0.0.1:5000', { ...context, allowLoopback: false }, 'op')).toThrow(
      /loopback/,
    );
  });

  it('binds credentials to scheme, host and port, whatever the spelling', () => {
    expect(endpointOrigin('https://Registry.Example.com/')).toBe('https://registry.example.com:443');
    expect(endpointOrigin('https://registry.example.com:443')).toBe('https://registry.example.com:443');
    expect(endpointOrigin('http://registry.example.com')).toBe('http://registry.example.com:80');
    expect(endpointOrigin('https://api.cluster:6443/base/path')).toBe('https://api.cluster:6443');
    expect(endpointOrigin('http://2130706433:5000')).toBe('http://127.0.0.1:5000');
    expect(endpointOrigin('http://[0:0::1]:5000')).toBe('http://[::1]:5000');
  });

  it('builds driver options: loopback in development, the target’s own hosts; Ratify reads roots.pem', () => {
    const options = driverOptions(
      {
        kind: 'kubernetes',
        endpoint: 'https://api.cluster:6443',
        settings: {
          namespace: 'default',
          ratify: { keyManagementProviderName: 'signet' },
          allowedHosts: ['auth.cluster'],
        },
      },
      { token: 'abc' },
      { globalAllowedHosts: [], allowLoopback: true, requestTimeoutMs: 1234 },
    );
    expect(options).toEqual({
      kind: 'kubernetes',
      endpoint: 'https://api.cluster:6443',
      namespace: 'default',
      ratify: { keyManagementProviderName: 'signet', pemLayerTitle: 'roots.pem' },
      allowedHosts: [...LOOPBACK_HOSTS, 'auth.cluster'],
      allowLoopback: true,
      requestTimeoutMs: 1234,
      credentials: { token: 'abc' },
    });
    expect(
      driverOptions({ kind: 'oci-registry', endpoint: 'https://r', settings: { repository: 'a/b' } }, undefined, {
        globalAllowedHosts: [],
        allowLoopback: false,
        requestTimeoutMs: 1,
      }).allowedHosts,
    ).toEqual([]);
  });

  it('with a configured allowlist, the driver may reach that list only: the endpoint must be on it, the target’s own hosts add nothing', () => {
    const options = driverOptions(
      {
        kind: 'oci-registry',
        endpoint: 'https://registry.example.com',
        settings: { repository: 'a/b', allowedHosts: ['elsewhere.example.net'] },
      },
      undefined,
      { globalAllowedHosts: ['registry.example.com', '*.blob.example.com'], allowLoopback: false, requestTimeoutMs: 1 },
    );
    expect(options).toMatchObject({
      allowedHosts: ['registry.example.com', '*.blob.example.com'],
      endpointListed: true,
      allowLoopback: false,
    });
  });

  it("checks a target's own allowedHosts: no refused address, and within the configured allowlist when there is one", () => {
    const open = { globalAllowedHosts: [], allowLoopback: false };
    expect(() =>
      validateTargetHosts(['auth.example.com', '*.blob.example.net', '10.0.0.5:5000'], open, 'op'),
    ).not.toThrow();
    for (const entry of [
      '169.254.169.254',
      '[::ffff:a9fe:a9fe]',
      '2852039166:80',
      'metadata.google.internal',
      '0.0.0.0',
      '127.0.0.1:5000',
    ]) {
      expect(() => validateTargetHosts(['auth.example.com', entry], open, 'op')).toThrow(
        expect.objectContaining({ code: 'ENDPOINT_NOT_ALLOWED', details: { field: 'allowedHosts[1]' } }),
      );
    }
    const listed = {
      globalAllowedHosts: ['auth.example.com', '*.blob.example.net', 'token.example.org:8443'],
      allowLoopback: false,
    };
    expect(() =>
      validateTargetHosts(
        [
          'auth.example.com',
          'eu.blob.example.net',
          '*.eu.blob.example.net',
          '*.blob.example.net',
          'token.example.org:8443',
        ],
        listed,
        'op',
      ),
    ).not.toThrow();
    for (const entry of [
      'evil.example.com',
      'blob.example.net',
      'token.example.org',
      'token.example.org:443',
      '*.example.net',
    ]) {
      expect(() => validateTargetHosts([entry], listed, 'op')).toThrow(
        expect.objectContaining({ code: 'ENDPOINT_NOT_ALLOWED', details: { field: 'allowedHosts[0]' } }),
      );
    }
    expect(() => validateTargetHosts(['https://x/y'], open, 'op')).toThrow(
      expect.objectContaining({ code: 'VALIDATION_ERROR' }),
    );
  });
});

describe(redactSecrets.name, () => {
  it('removes every credential value, kubeconfig tokens and bearer headers from a message', () => {
    const kubeconfig = 'users:\n- name: x\n  user:\n    token: kube-secret-token-123\n';
    const message =
      'push failed: Authorization: Bearer abc.def.ghi for user robot with p4ssw0rd-xyz (kube-secret-token-123)';
    const redacted = redactSecrets(message, { username: 'robot', password: 'p4ssw0rd-xyz', nested: { kubeconfig } });
    expect(redacted).not.toContain('p4ssw0rd-xyz');
    expect(redacted).not.toContain('kube-secret-token-123');
    expect(redacted).not.toContain('abc.def.ghi');
  });
});
