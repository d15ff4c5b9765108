import { DomainError } from '../common/errors';
import { driverOptions, isLoopbackHost, LOOPBACK_HOSTS, settingsFromInput, targetLayers, validateEndpoint } from './target-definition';
import { redactSecrets } from './target-credentials';

describe('target definitions', () => {
  it('keeps the settings of each kind and refuses fields of another kind, naming them', () => {
    expect(settingsFromInput('oci-registry', { repository: 'signet/truststore' }, 'op')).toEqual({ repository: 'signet/truststore' });
    expect(settingsFromInput('harbor', { repository: 'platform/truststore', contentTrust: { notation: true } }, 'op')).toEqual({ project: 'platform', repository: 'truststore', contentTrust: { notation: true } });
    expect(settingsFromInput('harbor', { project: 'platform', repository: 'truststore' }, 'op')).toEqual({ project: 'platform', repository: 'truststore' });
    expect(settingsFromInput('kubernetes', { namespace: 'default', ratify: { keyManagementProviderName: 'signet' } }, 'op')).toEqual({ namespace: 'default', ratify: { keyManagementProviderName: 'signet' } });
    expect(() => settingsFromInput('oci-registry', {}, 'op')).toThrow(/'repository' is required/);
    expect(() => settingsFromInput('harbor', { repository: 'truststore' }, 'op')).toThrow(/'project' is required/);
    expect(() => settingsFromInput('oci-registry', { repository: 'a/b', namespace: 'default' }, 'op')).toThrow(/'namespace' does not apply/);
    expect(() => settingsFromInput('kubernetes', { namespace: 'default', ratify: { name: 'x' } }, 'op')).toThrow(/'ratify'/);
    expect(() => settingsFromInput('oci-registry', { repository: 'a/b', formats: ['pem', 'jks'] }, 'op')).toThrow(/'formats'/);
    expect(() => settingsFromInput('kubernetes', { namespace: 'default', ratify: { keyManagementProviderName: 'x' }, formats: ['pem'] }, 'op')).toThrow(/'roots'/);
    expect(() => settingsFromInput('oci-registry', { repository: 'a/b', tls: { ca: 'x' } }, 'op')).toThrow(DomainError);
  });

  it('ratify.verifier: stored when true, needs the ratify layer, and hands the driver its title', () => {
    const settings = settingsFromInput('kubernetes', { namespace: 'default', ratify: { keyManagementProviderName: 'signet', verifier: true } }, 'op');
    expect(settings.ratify).toEqual({ keyManagementProviderName: 'signet', verifier: true });
    expect(settingsFromInput('kubernetes', { namespace: 'default', ratify: { keyManagementProviderName: 'signet', verifier: false } }, 'op').ratify).toEqual({ keyManagementProviderName: 'signet' });
    expect(() => settingsFromInput('kubernetes', { namespace: 'default', ratify: { keyManagementProviderName: 'x', verifier: 'yes' } }, 'op')).toThrow(/'ratify'/);
    expect(() => settingsFromInput('kubernetes', { namespace: 'default', ratify: { keyManagementProviderName: 'x', verifier: true }, formats: ['roots'] }, 'op')).toThrow(/'ratify'/);
    const options = driverOptions({ kind: 'kubernetes', endpoint: 'https://api.cluster:6443', settings }, undefined, { globalAllowedHosts: [], allowLoopback: false, requestTimeoutMs: 1 });
    expect(options).toMatchObject({ ratify: { keyManagementProviderName: 'signet', pemLayerTitle: 'roots.pem', verifierLayerTitle: 'ratify-kmp.yaml' } });
  });

  it('pushes every layer unless formats narrow them', () => {
    expect(targetLayers({})).toEqual(['pem', 'notation', 'pkcs12', 'ratify', 'kyverno', 'kyverno-ivp', 'trust-manager', 'roots']);
    expect(targetLayers({ formats: ['roots'] })).toEqual(['roots']);
  });

  it('refuses loopback endpoints unless configuration allows them', () => {
    for (const host of ['127.0.0.1', '127.1.2.3', 'localhost', 'api.localhost', '[::1]']) expect(isLoopbackHost(new URL(`http://${host}:5000`).hostname)).toBe(true);
    for (const host of ['10.0.0.1', 'registry.example.com', '[fd00::1]']) expect(isLoopbackHost(new URL(`http://${host}`).hostname)).toBe(false);
    expect(() => validateEndpoint('http://127.0.0.1:5000', false, 'op')).toThrow(/loopback/);
    expect(validateEndpoint('http://127.0.0.1:5000', true, 'op')).toBe('http://127.0.0.1:5000');
    expect(() => validateEndpoint('not a url', true, 'op')).toThrow(/'endpoint'/);
  });

  it('builds driver options: global hosts, loopback in development, the target’s own hosts; Ratify reads roots.pem', () => {
    const options = driverOptions(
      { kind: 'kubernetes', endpoint: 'https://api.cluster:6443', settings: { namespace: 'default', ratify: { keyManagementProviderName: 'signet' }, allowedHosts: ['auth.cluster'] } },
      { token: 'abc' },
      { globalAllowedHosts: ['blob.example.com'], allowLoopback: true, requestTimeoutMs: 1234 },
    );
    expect(options).toEqual({
      kind: 'kubernetes',
      endpoint: 'https://api.cluster:6443',
      namespace: 'default',
      ratify: { keyManagementProviderName: 'signet', pemLayerTitle: 'roots.pem' },
      allowedHosts: ['blob.example.com', ...LOOPBACK_HOSTS, 'auth.cluster'],
      requestTimeoutMs: 1234,
      credentials: { token: 'abc' },
    });
    expect(driverOptions({ kind: 'oci-registry', endpoint: 'https://r', settings: { repository: 'a/b' } }, undefined, { globalAllowedHosts: [], allowLoopback: false, requestTimeoutMs: 1 }).allowedHosts).toEqual([]);
  });
});

describe(redactSecrets.name, () => {
  it('removes every credential value, kubeconfig tokens and bearer headers from a message', () => {
    const kubeconfig = 'users:\n- name: x\n  user:\n    token: kube-secret-token-123\n';
    const message = 'push failed: Authorization: Bearer abc.def.ghi for user robot with p4ssw0rd-xyz (kube-secret-token-123)';
    const redacted = redactSecrets(message, { username: 'robot', password: 'p4ssw0rd-xyz', nested: { kubeconfig } });
    expect(redacted).not.toContain('p4ssw0rd-xyz');
    expect(redacted).not.toContain('kube-secret-token-123');
    expect(redacted).not.toContain('abc.def.ghi');
  });
});
