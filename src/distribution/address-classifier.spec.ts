import { classifyAddress, classifyHost, hostRefusal } from './address-classifier';

describe('address classifier', () => {
  // Every spelling of the cloud metadata address a URL parser or resolver accepts.
  const metadataForms = [
    '169.254.169.254',
    '2852039166', // decimal
    '0xA9FEA9FE', // hex
    '0xa9.0xfe.0xa9.0xfe',
    '0251.0376.0251.0376', // octal
    '169.254.43518', // short forms
    '169.16689662',
    '::ffff:169.254.169.254', // IPv4-mapped
    '[::ffff:169.254.169.254]',
    '[::ffff:a9fe:a9fe]',
    '[0:0:0:0:0:ffff:a9fe:a9fe]',
    '::ffff:0:a9fe:a9fe', // SIIT
    '64:ff9b::a9fe:a9fe', // NAT64
    '2002:a9fe:a9fe::1', // 6to4
    '::a9fe:a9fe', // IPv4-compatible
  ];

  it.each(metadataForms)('refuses %s (169.254.169.254) as link-local', (form) => {
    expect(classifyHost(form)).toMatchObject({ category: 'forbidden', reason: expect.stringMatching(/link-local/) });
    expect(hostRefusal(form, true)).toMatch(/link-local/);
  });

  it.each([
    ['fe80::1', /link-local/],
    ['[fe80::a:b]', /link-local/],
    ['169.254.170.2', /link-local/], // ECS task metadata
    ['fd00:ec2::254', /metadata/], // AWS IMDS over IPv6
    ['[fd00:ec2::254]', /metadata/],
    ['fd20:ce::254', /metadata/], // GCP over IPv6
    ['100.100.100.200', /metadata/], // Alibaba Cloud
    ['192.0.0.192', /metadata/], // Oracle Cloud
    ['metadata.google.internal', /metadata/],
    ['METADATA.GOOGLE.INTERNAL.', /metadata/],
    ['metadata', /metadata/],
    ['instance-data.ec2.internal', /metadata/],
    ['0.0.0.0', /unspecified/],
    ['0', /unspecified/],
    ['0.1.2.3', /unspecified/],
    ['::', /unspecified/],
    ['[::]', /unspecified/],
    ['::ffff:0.0.0.0', /unspecified/],
    ['255.255.255.255', /broadcast/],
    ['224.0.0.1', /multicast/],
    ['ff02::1', /multicast/],
  ])('refuses %s', (host, reason) => {
    expect(hostRefusal(host, true)).toMatch(reason);
  });

  it.each([
    '127.0.0.1',
    '127.1',
    '2130706433',
    '0x7f000001',
    '017700000001',
    '::1',
    '[::1]',
    '::ffff:127.0.0.1',
    'localhost',
    'api.localhost',
    'LOCALHOST.',
  ])('treats %s as loopback: allowed only with allowLoopback', (host) => {
    expect(classifyHost(host).category).toBe('loopback');
    expect(hostRefusal(host, false)).toMatch(/loopback/);
    expect(hostRefusal(host, true)).toBeUndefined();
  });

  it('keeps private, unique-local and public addresses and DNS names reachable', () => {
    expect(classifyHost('10.1.2.3').category).toBe('private');
    expect(classifyHost('192.168.0.10').category).toBe('private');
    expect(classifyHost('100.64.0.1').category).toBe('private');
    expect(classifyHost('fd12:3456::1').category).toBe('private');
    expect(classifyHost('8.8.8.8').category).toBe('public');
    expect(classifyHost('2001:4860::8888').category).toBe('public');
    expect(classifyHost('registry.example.com').category).toBe('name');
    for (const host of ['10.1.2.3', 'fd12:3456::1', '8.8.8.8', 'registry.example.com'])
      expect(hostRefusal(host, false)).toBeUndefined();
  });

  it('classifies resolved addresses; anything else is refused', () => {
    expect(classifyAddress('169.254.169.254').category).toBe('forbidden');
    expect(classifyAddress('::ffff:169.254.169.254').category).toBe('forbidden');
    expect(classifyAddress('10.0.0.1').category).toBe('private');
    expect(classifyAddress('not-an-address').category).toBe('forbidden');
  });
});
