import 'reflect-metadata';
import * as x509 from '@peculiar/x509';
import { CaEndpointUrls } from './ca-urls';

/**
 * Certificate profiles from NOTARY.md. Each profile is the complete extension set; nothing else
 * is ever added (no FreshestCRL, no policies, no SAN).
 */
export type CertificateProfile = 'root-ca' | 'issuing-ca' | 'code-signing' | 'tsa-root' | 'timestamping';

export const EKU_OIDS = {
  codeSigning: '1.3.6.1.5.5.7.3.3',
  timeStamping: '1.3.6.1.5.5.7.3.8',
  serverAuth: '1.3.6.1.5.5.7.3.1',
  clientAuth: '1.3.6.1.5.5.7.3.2',
  emailProtection: '1.3.6.1.5.5.7.3.4',
  ocspSigning: '1.3.6.1.5.5.7.3.9',
  anyExtendedKeyUsage: '2.5.29.37.0',
} as const;

export const EXTENSION_OIDS = {
  subjectKeyIdentifier: '2.5.29.14',
  keyUsage: '2.5.29.15',
  basicConstraints: '2.5.29.19',
  cRLNumber: '2.5.29.20',
  reasonCode: '2.5.29.21',
  invalidityDate: '2.5.29.24',
  cRLDistributionPoints: '2.5.29.31',
  authorityKeyIdentifier: '2.5.29.35',
  extKeyUsage: '2.5.29.37',
  freshestCRL: '2.5.29.46',
  authorityInfoAccess: '1.3.6.1.5.5.7.1.1',
} as const;

const KU = x509.KeyUsageFlags;
/** A CA signs certificates and CRLs, and its OCSP responses itself (no delegated responder). */
const CA_KEY_USAGE = KU.keyCertSign | KU.cRLSign | KU.digitalSignature;

export interface ProfileInputs {
  subjectKeyIdentifier: Buffer;
  /** Absent only for self-signed roots. */
  authorityKeyIdentifier?: Buffer;
  /** The issuer generation's endpoints; required for issuing-ca and code-signing. */
  issuerUrls?: CaEndpointUrls;
}

/** Profiles that need the issuer's revocation endpoints in the certificate. */
export const PROFILES_REQUIRING_URLS: readonly CertificateProfile[] = ['issuing-ca', 'code-signing'];

/**
 * Extension objects are immutable once built; the constant ones and the per-issuer ones (AKI,
 * CRL DP, AIA) are reused so each certificate only builds its own SKI.
 */
const constantExtensions = new Map<CertificateProfile, x509.Extension[]>();
const issuerExtensionCache = new Map<string, x509.Extension[]>();
const ISSUER_CACHE_LIMIT = 64;

function constantsFor(profile: CertificateProfile): x509.Extension[] {
  let extensions = constantExtensions.get(profile);
  if (extensions) return extensions;
  switch (profile) {
    case 'root-ca':
      extensions = [new x509.BasicConstraintsExtension(true, undefined, true), new x509.KeyUsagesExtension(CA_KEY_USAGE, true)];
      break;
    case 'tsa-root':
      // Issues TSA signing certificates directly, so no intermediate is ever needed below it.
      extensions = [new x509.BasicConstraintsExtension(true, 0, true), new x509.KeyUsagesExtension(CA_KEY_USAGE, true)];
      break;
    case 'issuing-ca':
      extensions = [new x509.BasicConstraintsExtension(true, 0, true), new x509.KeyUsagesExtension(CA_KEY_USAGE, true)];
      break;
    case 'code-signing':
      // basicConstraints left out (allowed: "absent or CA=FALSE").
      extensions = [
        new x509.KeyUsagesExtension(KU.digitalSignature, true),
        new x509.ExtendedKeyUsageExtension([EKU_OIDS.codeSigning], false),
      ];
      break;
    case 'timestamping':
      // RFC 3161 §2.3: EKU timeStamping only, critical.
      extensions = [
        new x509.KeyUsagesExtension(KU.digitalSignature, true),
        new x509.ExtendedKeyUsageExtension([EKU_OIDS.timeStamping], true),
      ];
      break;
  }
  constantExtensions.set(profile, extensions);
  return extensions;
}

function issuerExtensions(authorityKeyIdentifier: Buffer | undefined, urls: CaEndpointUrls | undefined): x509.Extension[] {
  const cacheKey = `${authorityKeyIdentifier?.toString('hex') ?? ''}|${urls?.crl ?? ''}|${urls?.ocsp ?? ''}|${urls?.caIssuers ?? ''}`;
  let extensions = issuerExtensionCache.get(cacheKey);
  if (extensions) return extensions;
  extensions = [];
  if (authorityKeyIdentifier) {
    extensions.push(new x509.AuthorityKeyIdentifierExtension(authorityKeyIdentifier.toString('hex'), false));
  }
  if (urls) {
    extensions.push(new x509.CRLDistributionPointsExtension([urls.crl], false));
    extensions.push(new x509.AuthorityInfoAccessExtension({ ocsp: [urls.ocsp], caIssuers: [urls.caIssuers] }, false));
  }
  if (issuerExtensionCache.size >= ISSUER_CACHE_LIMIT) issuerExtensionCache.delete(issuerExtensionCache.keys().next().value!);
  issuerExtensionCache.set(cacheKey, extensions);
  return extensions;
}

export function profileExtensions(profile: CertificateProfile, inputs: ProfileInputs): x509.Extension[] {
  const selfSigned = profile === 'root-ca' || profile === 'tsa-root';
  return [
    ...constantsFor(profile),
    new x509.SubjectKeyIdentifierExtension(inputs.subjectKeyIdentifier.toString('hex'), false),
    ...(selfSigned ? [] : issuerExtensions(inputs.authorityKeyIdentifier, inputs.issuerUrls)),
  ];
}
