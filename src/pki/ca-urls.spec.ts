import { PkiError } from './pki-error';
import { caGenerationUrls } from './ca-urls';

describe(caGenerationUrls.name, () => {
  it('builds /pki/{gen}.crt, /pki/{gen}.crl and /ocsp/{gen} under the base URL', () => {
    expect(caGenerationUrls('http://pki.example.com:8080/', 'issuing-2025q1')).toEqual({
      caIssuers: 'http://pki.example.com:8080/pki/issuing-2025q1.crt',
      crl: 'http://pki.example.com:8080/pki/issuing-2025q1.crl',
      ocsp: 'http://pki.example.com:8080/ocsp/issuing-2025q1',
    });
    expect(caGenerationUrls('http://pki.example.com/signet', 'root.g2').ocsp).toBe(
      'http://pki.example.com/signet/ocsp/root.g2',
    );
  });

  it.each([
    ['https://pki.example.com', 'g1', 'baseUrl'],
    ['ldap://pki.example.com', 'g1', 'baseUrl'],
    ['not a url', 'g1', 'baseUrl'],
    ['http://user:pw@pki.example.com', 'g1', 'baseUrl'],
    ['http://pki.example.com', '../g1', 'generationName'],
    ['http://pki.example.com', 'g 1', 'generationName'],
  ])('rejects %s / %s naming %s', (base, generation, field) => {
    try {
      caGenerationUrls(base, generation);
      throw new Error('expected a PkiError');
    } catch (error) {
      expect(error).toBeInstanceOf(PkiError);
      expect((error as PkiError).code).toBe('VALIDATION_ERROR');
      expect((error as PkiError).details?.field).toBe(field);
    }
  });
});
