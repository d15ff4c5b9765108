import 'reflect-metadata';
import * as x509 from '@peculiar/x509';
import { CaEndpointUrls } from './ca-urls';
import { extension, octetString } from './der-writer';

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
 * The profiles are defined with @peculiar/x509's extension classes; certificates are assembled
 * from their DER (`rawData`). The constant extensions and the per-issuer ones (AKI, CRL DP, AIA)
 * are encoded once and reused, so each certificate only encodes its own SKI.
 */
const constantExtensions = new Map<CertificateProfile, Buffer[]>();
const issuerExtensionCache = new Map<string, Buffer[]>();
const ISSUER_CACHE_LIMIT = 64;

const derOf = (extensions: x509.Extension[]): Buffer[] => extensions.map((ext) => Buffer.from(ext.rawData));

function constantsFor(profile: CertificateProfile): Buffer[] {
  let extensions = constantExtensions.get(profile);
  if (extensions) return extensions;
  switch (profile) {
    case 'root-ca':
      extensions = derOf([
        new x509.BasicConstraintsExtension(true, undefined, true),
        new x509.KeyUsagesExtension(CA_KEY_USAGE, true),
      ]);
      break;
    case 'tsa-root':
      // Issues TSA signing certificates directly, so no intermediate is ever needed below it.
      extensions = derOf([
        new x509.BasicConstraintsExtension(true, 0, true),
        new x509.KeyUsagesExtension(CA_KEY_USAGE, true),
      ]);
      break;
    case 'issuing-ca':
      extensions = derOf([
        new x509.BasicConstraintsExtension(true, 0, true),
        new x509.KeyUsagesExtension(CA_KEY_USAGE, true),
      ]);
      break;
    case 'code-signing':
      // basicConstraints left out (allowed: "absent or CA=FALSE").
      extensions = derOf([
        new x509.KeyUsagesExtension(KU.digitalSignature, true),
        new x509.ExtendedKeyUsageExtension([EKU_OIDS.codeSigning], false),
      ]);
      break;
    case 'timestamping':
      // RFC 3161 §2.3: EKU timeStamping only, critical.
      extensions = derOf([
        new x509.KeyUsagesExtension(KU.digitalSignature, true),
        new x509.ExtendedKeyUsageExtension([EKU_OIDS.timeStamping], true),
      ]);
      break;
  }
  constantExtensions.set(profile, extensions);
  return extensions;
}

function issuerExtensions(authorityKeyIdentifier: Buffer | undefined, urls: CaEndpointUrls | undefined): Buffer[] {
  const cacheKey = `${authorityKeyIdentifier?.toString('hex') ?? ''}|${urls?.crl ?? ''}|${urls?.ocsp ?? ''}|${urls?.caIssuers ?? ''}`;
  let extensions = issuerExtensionCache.get(cacheKey);
  if (extensions) return extensions;
  const objects: x509.Extension[] = [];
  if (authorityKeyIdentifier) {
    objects.push(new x509.AuthorityKeyIdentifierExtension(authorityKeyIdentifier.toString('hex'), false));
  }
  if (urls) {
    objects.push(new x509.CRLDistributionPointsExtension([urls.crl], false));
    objects.push(new x509.AuthorityInfoAccessExtension({ ocsp: [urls.ocsp], caIssuers: [urls.caIssuers] }, false));
  }
  extensions = derOf(objects);
  if (issuerExtensionCache.size >= ISSUER_CACHE_LIMIT)
    issuerExtensionCache.delete(issuerExtensionCache.keys().next().value!);
  issuerExtensionCache.set(cacheKey, extensions);
  return extensions;
}

/**
 * The profile's complete extension list, in certificate order, as DER `Extension` elements:
 * the profile's constant extensions, SKI (non-critical), then AKI, CRL DP and AIA for issued CAs and leaves.
 */
export function profileExtensions(profile: CertificateProfile, inputs: ProfileInputs): Buffer[] {
  const selfSigned = profile === 'root-ca' || profile === 'tsa-root';
  return [
    ...constantsFor(profile),
    // SubjectKeyIdentifier ::= KeyIdentifier (OCTET STRING), wrapped in extnValue.
    extension(EXTENSION_OIDS.subjectKeyIdentifier, false, octetString(inputs.subjectKeyIdentifier)),
    ...(selfSigned ? [] : issuerExtensions(inputs.authorityKeyIdentifier, inputs.issuerUrls)),
  ];
}
