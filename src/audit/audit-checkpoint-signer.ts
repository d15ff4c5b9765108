import { Inject, Injectable, Logger, Optional } from '@nestjs/common';
import { createPublicKey, createVerify, KeyObject, constants as cryptoConstants } from 'node:crypto';
import * as fs from 'node:fs';
import { DigestSigner, HASH_LENGTH, HashAlgorithm, KEY_SPEC_INFO, KeySpec, nodeHashName } from '../pki/key-spec';
import { SIGNET_CONFIG, SignetConfig } from '../config/config';

/** A signer for checkpoints, optionally naming its key (e.g. a PKCS#11 URI) for the record. */
export type AuditCheckpointSigner = DigestSigner & { readonly keyRef?: string };

/**
 * Injection token: `() => Promise<AuditCheckpointSigner>`, called per checkpoint so a rotated key
 * takes effect without a restart. Bound by the HSM module; unbound means "checkpoints unavailable".
 */
export const AUDIT_CHECKPOINT_SIGNER = Symbol('AUDIT_CHECKPOINT_SIGNER');
export type AuditCheckpointSignerFactory = () => Promise<AuditCheckpointSigner>;

/**
 * Where checkpoint signatures come from and which public keys a verifier trusts: the current
 * signer's key plus any listed in SIGNET_AUDIT_TRUSTED_KEYS_FILE (e.g. a retired checkpoint key).
 * Trusting only the key stored next to a checkpoint would let whoever rewrites the table sign
 * their own checkpoints.
 */
@Injectable()
export class AuditCheckpointSigners {
  private readonly logger = new Logger('AuditCheckpointSigners');
  private factory?: AuditCheckpointSignerFactory;
  private fileKeys?: Buffer[];

  constructor(
    @Inject(SIGNET_CONFIG) private readonly config: SignetConfig,
    @Optional() @Inject(AUDIT_CHECKPOINT_SIGNER) factory?: AuditCheckpointSignerFactory,
  ) {
    this.factory = factory ?? undefined;
  }

  /** Late binding, for modules that obtain their signer after Nest wired this one. */
  bind(factory: AuditCheckpointSignerFactory | undefined): void {
    this.factory = factory;
  }

  get bound(): boolean {
    return this.factory !== undefined;
  }

  async signer(): Promise<AuditCheckpointSigner | undefined> {
    return this.factory ? this.factory() : undefined;
  }

  /** SPKI DER of every trusted checkpoint key, plus a warning when the current key could not be read. */
  async trustedKeys(): Promise<{ keys: Buffer[]; warnings: string[] }> {
    const warnings: string[] = [];
    const keys = [...this.keysFromFile()];
    if (this.factory) {
      try {
        keys.push((await this.factory()).publicKeySpki);
      } catch (error) {
        warnings.push(
          `the checkpoint signer is unavailable (${(error as Error).message}); only keys from the trusted keys file are trusted`,
        );
      }
    }
    return { keys, warnings };
  }

  private keysFromFile(): Buffer[] {
    if (this.fileKeys) return this.fileKeys;
    const file = this.config.audit?.trustedKeysFile;
    if (!file) return (this.fileKeys = []);
    const pem = fs.readFileSync(file, 'utf8');
    const blocks = pem.match(/-----BEGIN PUBLIC KEY-----[\s\S]*?-----END PUBLIC KEY-----/g) ?? [];
    this.fileKeys = blocks.map((block) => createPublicKey(block).export({ type: 'spki', format: 'der' }));
    this.logger.log(`trusting ${this.fileKeys.length} extra checkpoint key(s) from ${file}`);
    return this.fileKeys;
  }
}

/** Checks a checkpoint signature the way DigestSigner produced it (ECDSA P1363 or RSA-PSS). */
export function verifyCheckpointSignature(
  spec: string,
  publicKeySpki: Buffer,
  statement: Buffer,
  signature: Buffer,
): boolean {
  const info = KEY_SPEC_INFO[spec as KeySpec];
  if (!info) return false;
  let key: KeyObject;
  try {
    key = createPublicKey({ key: publicKeySpki, format: 'der', type: 'spki' });
  } catch {
    return false;
  }
  const verifier = createVerify(nodeHashName(info.hash));
  verifier.update(statement);
  try {
    return info.kind === 'EC'
      ? verifier.verify({ key, dsaEncoding: 'ieee-p1363' }, signature)
      : verifier.verify(
          { key, padding: cryptoConstants.RSA_PKCS1_PSS_PADDING, saltLength: HASH_LENGTH[info.hash] },
          signature,
        );
  } catch {
    return false;
  }
}

export function checkpointHash(spec: string): HashAlgorithm {
  return KEY_SPEC_INFO[spec as KeySpec]?.hash ?? 'SHA-256';
}
