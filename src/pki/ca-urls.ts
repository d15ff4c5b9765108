import { PkiError } from './pki-error';

/**
 * Public endpoints of one CA key generation. Certificates it issues point at these (CRL DP and
 * AIA); they must be plain http:// because Notation refuses https for revocation.
 */
export interface CaEndpointUrls {
  /** AIA caIssuers: DER certificate of the generation, `{base}/pki/{gen}.crt`. */
  caIssuers: string;
  /** CRL distribution point, `{base}/pki/{gen}.crl`. */
  crl: string;
  /** AIA OCSP responder, `{base}/ocsp/{gen}`. */
  ocsp: string;
}

const GENERATION_NAME = /^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$/;

export function caGenerationUrls(baseUrl: string, generationName: string): CaEndpointUrls {
  assertHttpUrl(baseUrl, 'baseUrl', 'caGenerationUrls');
  if (!GENERATION_NAME.test(generationName)) {
    throw new PkiError('VALIDATION_ERROR', `caGenerationUrls: 'generationName' must match ${GENERATION_NAME.source}`, {
      field: 'generationName',
    });
  }
  const base = baseUrl.replace(/\/+$/, '');
  return {
    caIssuers: `${base}/pki/${generationName}.crt`,
    crl: `${base}/pki/${generationName}.crl`,
    ocsp: `${base}/ocsp/${generationName}`,
  };
}

export function assertHttpUrl(url: string, field: string, operation: string): void {
  let parsed: URL;
  try {
    parsed = new URL(url);
  } catch {
    throw new PkiError('VALIDATION_ERROR', `${operation}: '${field}' is not a valid URL`, { field });
  }
  if (parsed.protocol !== 'http:') {
    throw new PkiError(
      'VALIDATION_ERROR',
      `${operation}: '${field}' must be an http:// URL (Notation refuses https for revocation)`,
      { field },
    );
  }
  if (parsed.search || parsed.hash || parsed.username || parsed.password) {
    throw new PkiError(
      'VALIDATION_ERROR',
      `${operation}: '${field}' must not carry credentials, a query or a fragment`,
      {
        field,
      },
    );
  }
}

export function assertEndpointUrls(urls: CaEndpointUrls, operation: string): void {
  assertHttpUrl(urls.caIssuers, 'urls.caIssuers', operation);
  assertHttpUrl(urls.crl, 'urls.crl', operation);
  assertHttpUrl(urls.ocsp, 'urls.ocsp', operation);
}
