import { OutboundPolicy } from './outbound-policy';

describe(OutboundPolicy.name, () => {
  const policy = new OutboundPolicy(
    ['registry.example.com', 'auth.example.com:8443', '*.blob.example.net', '127.0.0.1:5000', '[::1]:6000'],
    [],
    { allowLoopback: true },
  );

  it.each([
    ['https://registry.example.com/v2/', true],
    ['http://registry.example.com:5000/v2/', true], // no port in the entry: any port
    ['https://REGISTRY.example.com./v2/', true],
    ['https://auth.example.com:8443/token', true],
    ['https://auth.example.com/token', false], // the entry names port 8443
    ['https://eu.blob.example.net/x', true],
    ['https://blob.example.net/x', false], // a wildcard does not cover the apex
    ['https://evil-registry.example.com/', false],
    ['http://127.0.0.1:5000/v2/', true],
    ['http://127.0.0.1:5001/v2/', false],
    ['http://[::1]:6000/', true],
    ['http://localhost:5000/', false],
    ['ftp://registry.example.com/', false],
    ['https://user:pw@registry.example.com/', false],
  ])('%s → %s', (url, allowed) => {
    expect(policy.allowsUrl(new URL(url))).toBe(allowed);
  });

  it('refuses link-local and unspecified addresses whatever the name', () => {
    expect(policy.allowsAddress('registry.example.com', '169.254.169.254')).toBe(false);
    expect(policy.allowsAddress('registry.example.com', 'fe80::1')).toBe(false);
    expect(policy.allowsAddress('registry.example.com', '0.0.0.0')).toBe(false);
    expect(policy.allowsAddress('registry.example.com', '::ffff:169.254.169.254')).toBe(false);
    expect(policy.allowsAddress('registry.example.com', '::ffff:a9fe:a9fe')).toBe(false);
    expect(policy.allowsAddress('registry.example.com', 'fd00:ec2::254')).toBe(false);
  });

  it('refuses metadata and link-local hosts in URLs even when an allowlist entry names them', () => {
    const listed = new OutboundPolicy(['169.254.169.254', 'metadata.google.internal', '[fe80::1]']);
    for (const url of [
      'http://169.254.169.254/latest/',
      'http://2852039166/',
      'http://0xA9FEA9FE/',
      'http://169.254.43518/',
      'http://[::ffff:a9fe:a9fe]/',
      'http://metadata.google.internal/',
      'http://[fe80::1]/',
    ]) {
      expect(listed.refusal(new URL(url))).toMatch(/link-local|metadata/);
    }
  });

  it('reaches loopback only with allowLoopback, and only through a name that says loopback', () => {
    const strict = new OutboundPolicy(['127.0.0.1:5000', 'localhost']);
    expect(strict.allowsUrl(new URL('http://127.0.0.1:5000/v2/'))).toBe(false);
    expect(strict.refusal(new URL('http://127.0.0.1:5000/v2/'))).toMatch(/SIGNET_DISTRIBUTION_ALLOW_LOOPBACK/);
    expect(strict.allowsAddress('localhost', '127.0.0.1')).toBe(false);
    expect(policy.allowsAddress('registry.example.com', '127.0.0.1')).toBe(false);
    expect(policy.allowsAddress('registry.example.com', '::1')).toBe(false);
    expect(policy.allowsAddress('127.0.0.1', '127.0.0.1')).toBe(true);
    expect(policy.allowsAddress('localhost', '::1')).toBe(true);
  });

  it('keeps private ranges reachable (internal registries live there)', () => {
    expect(policy.allowsAddress('registry.example.com', '10.1.2.3')).toBe(true);
    expect(policy.allowsAddress('registry.example.com', '192.168.1.10')).toBe(true);
  });

  it('forEndpoint allows the endpoint origin plus the listed hosts', () => {
    const forEndpoint = OutboundPolicy.forEndpoint(new URL('http://127.0.0.1:5000'), ['auth.example.com'], {
      allowLoopback: true,
    });
    expect(forEndpoint.allowsUrl(new URL('http://127.0.0.1:5000/v2/'))).toBe(true);
    expect(forEndpoint.allowsUrl(new URL('http://127.0.0.1:5001/token'))).toBe(false);
    expect(forEndpoint.allowsUrl(new URL('https://auth.example.com/token'))).toBe(true);
  });

  it('forEndpoint with endpointListed: the endpoint is reachable only if the list names it', () => {
    const listed = OutboundPolicy.forEndpoint(new URL('https://evil.example.net'), ['registry.example.com'], {
      endpointListed: true,
    });
    expect(listed.allowsUrl(new URL('https://evil.example.net/v2/'))).toBe(false);
    expect(listed.allowsUrl(new URL('https://registry.example.com/v2/'))).toBe(true);
  });

  it('coversEntry: whether everything an entry admits is admitted', () => {
    const global = new OutboundPolicy(['registry.example.com', '*.blob.example.net', 'auth.example.org:8443']);
    expect(global.coversEntry('registry.example.com')).toBe(true);
    expect(global.coversEntry('registry.example.com:5000')).toBe(true);
    expect(global.coversEntry('eu.blob.example.net')).toBe(true);
    expect(global.coversEntry('*.eu.blob.example.net')).toBe(true);
    expect(global.coversEntry('*.blob.example.net')).toBe(true);
    expect(global.coversEntry('auth.example.org:8443')).toBe(true);
    expect(global.coversEntry('auth.example.org')).toBe(false); // any port, the list names one
    expect(global.coversEntry('blob.example.net')).toBe(false);
    expect(global.coversEntry('*.example.net')).toBe(false);
    expect(global.coversEntry('*.registry.example.com')).toBe(false);
  });

  it('rejects malformed entries naming the field', () => {
    expect(() => new OutboundPolicy(['ok.example.com', 'https://x.example.com/path'])).toThrow("'allowedHosts[1]'");
    expect(() => new OutboundPolicy(['*.10.0.0.1'])).toThrow("'allowedHosts[0]'");
  });
});
