import * as crypto from 'node:crypto';
import { HASH_LENGTH, KEY_SPEC_INFO, KeySpec, nodeHashName } from '../pki/key-spec';
import { PluginError } from './protocol';

const CURVE_NAMES: Record<string, string> = { 'P-256': 'prime256v1', 'P-384': 'secp384r1', 'P-521': 'secp521r1' };

/**
 * The checks Notation makes on a generate-signature response before it builds the envelope
 * (signature over the payload verifies with the leaf's key; chain leaf → root), made here first so
 * a wrong answer from Signet fails with a message about Signet instead of an opaque Notation error.
 * Trust (is the root in a trust store?) and revocation stay Notation's business.
 */
export function checkSignature(
  operation: string,
  keySpec: KeySpec,
  payload: Buffer,
  signature: Buffer,
  chainDer: Buffer[],
): void {
  const fail = (message: string) => new PluginError('ERROR', `${operation}: ${message}`);
  if (chainDer.length === 0) throw fail('Signet returned an empty certificateChain');
  const chain = chainDer.map((der, index) => {
    try {
      return new crypto.X509Certificate(der);
    } catch {
      throw fail(`certificateChain[${index}] from Signet is not a DER X.509 certificate`);
    }
  });

  const info = KEY_SPEC_INFO[keySpec];
  const leaf = chain[0];
  const key = leaf.publicKey;
  const details = key.asymmetricKeyDetails ?? {};
  const keyMatches =
    info.kind === 'EC'
      ? key.asymmetricKeyType === 'ec' && details.namedCurve === CURVE_NAMES[info.curve!]
      : key.asymmetricKeyType === 'rsa' && details.modulusLength === info.modulusBits;
  if (!keyMatches) {
    const actual =
      key.asymmetricKeyType === 'ec'
        ? `EC ${details.namedCurve}`
        : `${key.asymmetricKeyType} ${details.modulusLength ?? '?'} bits`;
    throw fail(`the leaf certificate (${oneLine(leaf.subject)}) holds a ${actual} key, not ${keySpec}`);
  }

  if (info.kind === 'EC' && signature.length !== info.rawSignatureLength) {
    throw fail(
      `Signet returned a ${signature.length}-byte ECDSA signature; ${keySpec} raw r||s is ${info.rawSignatureLength} bytes`,
    );
  }
  const verifyKey: crypto.VerifyKeyObjectInput | crypto.VerifyPublicKeyInput =
    info.kind === 'EC'
      ? { key, dsaEncoding: 'ieee-p1363' }
      : { key, padding: crypto.constants.RSA_PKCS1_PSS_PADDING, saltLength: HASH_LENGTH[info.hash] };
  if (!crypto.verify(nodeHashName(info.hash), payload, verifyKey, signature)) {
    throw fail(
      `the signature from Signet does not verify against the leaf certificate's key over the payload (${info.signingAlgorithm})`,
    );
  }

  chain.forEach((certificate, index) => {
    const issuer = chain[index + 1] ?? certificate;
    if (!certificate.checkIssued(issuer) || !certificate.verify(issuer.publicKey)) {
      throw fail(
        index === chain.length - 1
          ? `certificateChain must end with a self-signed root; its last certificate (${oneLine(certificate.subject)}) is not self-signed`
          : `certificateChain is not ordered leaf → root: certificate ${index} (${oneLine(certificate.subject)}) was not issued by certificate ${index + 1} (${oneLine(issuer.subject)})`,
      );
    }
  });
}

function oneLine(name: string): string {
  return name.replace(/\n/g, ', ');
}
