import { DomainError, ErrorCode } from '../common/errors';
import {
  HASH_LENGTH,
  KEY_SPEC_INFO,
  isHashAlgorithm,
  type DigestSigner,
  type HashAlgorithm,
  type KeySpec,
} from '../pki/key-spec';
import type { SignOptions } from './key-store';
import { digestInfo, ecdsaMechanism, rsaPkcs1Mechanism, rsaPssMechanism } from './key-templates';
import type { KeyManager } from './key-manager';
import type { Mechanism } from './pkcs11-api';
import { toDomainError } from './pkcs11-errors';
import type { KeyTarget, Pkcs11Tokens, ResolvedKey } from './pkcs11-tokens';
import type { PooledSession } from './session-pool';
import type { KeySigner, SignerFactory, SignerOptions } from './signer-factory';
import type { SignWorkerPool } from './sign-workers';

/**
 * SignerFactory over PKCS#11: signatures through the session pool of the key's token, made on the
 * signing threads (SignWorkerPool) or with the async C_Sign on libuv's pool (SIGNET_HSM_SIGN_WORKERS).
 */
export class Pkcs11SignerFactory implements SignerFactory {
  /** The signer with default options (microtask flush), shared by every caller that asks for it. */
  readonly defaultSigner: KeySigner = { sign: (keyUri, digest, options) => this.sign(keyUri, digest, options, false) };
  private readonly checkPhaseSigner: KeySigner = {
    sign: (keyUri, digest, options) => this.sign(keyUri, digest, options, true),
  };

  constructor(
    private readonly tokens: Pkcs11Tokens,
    private readonly keys: Pick<KeyManager, 'describeKey'>,
  ) {}

  keySigner(options: SignerOptions = {}): KeySigner {
    return options.flushAtCheckPhase === true ? this.checkPhaseSigner : this.defaultSigner;
  }

  async getSigner(keyUri: string, options: SignerOptions = {}): Promise<DigestSigner> {
    const info = await this.keys.describeKey(keyUri);
    const signer = this.keySigner(options);
    return {
      spec: info.spec,
      publicKeySpki: info.publicKeySpki,
      signDigest: (digest, hash, rsaPadding) => signer.sign(keyUri, digest, { hash, rsaPadding }),
    };
  }

  private async sign(
    keyUri: string,
    digest: Buffer,
    options: SignOptions,
    flushAtCheckPhase: boolean,
  ): Promise<Buffer> {
    const hash = options?.hash;
    const rsaPadding = options?.rsaPadding;
    // Invalid input never reaches the HSM (API.md): check it all before taking a session.
    if (!isHashAlgorithm(hash))
      throw new DomainError(ErrorCode.UNSUPPORTED_ALGORITHM, `sign: unsupported hash algorithm '${String(hash)}'`);
    if (!Buffer.isBuffer(digest) || digest.length !== HASH_LENGTH[hash]) {
      const got = Buffer.isBuffer(digest) ? `${digest.length} bytes` : 'not a Buffer';
      throw new DomainError(
        ErrorCode.INVALID_DIGEST_LENGTH,
        `sign: digest is ${got}; ${hash} digests are ${HASH_LENGTH[hash]} bytes`,
      );
    }
    if (rsaPadding !== undefined && rsaPadding !== 'pss' && rsaPadding !== 'pkcs1') {
      throw new DomainError(ErrorCode.UNSUPPORTED_ALGORITHM, `sign: unknown rsaPadding '${String(rsaPadding)}'`);
    }
    const tokens = this.tokens;
    const target = tokens.target('sign', keyUri);
    if (rsaPadding === 'pkcs1') tokens.requireFeature('sign', target.pool, 'rsa-pkcs1');
    const known = tokens.keys.get(keyUri);
    if (known && known.epoch === target.pool.epoch) checkPadding(known.spec, rsaPadding);
    try {
      return await target.pool.run('sign', (session) =>
        this.signOnSession(session, target, keyUri, digest, hash, rsaPadding, flushAtCheckPhase),
      );
    } catch (err) {
      throw toDomainError('sign', err);
    }
  }

  private signOnSession(
    session: PooledSession,
    target: KeyTarget,
    keyUri: string,
    digest: Buffer,
    hash: HashAlgorithm,
    rsaPadding: SignOptions['rsaPadding'],
    flushAtCheckPhase: boolean,
  ): Promise<Buffer> {
    const tokens = this.tokens;
    const key = tokens.keyOnSession(session, target, keyUri, 'sign');
    checkPadding(key.spec, rsaPadding);
    let mechanism: Mechanism;
    let data = digest;
    if (KEY_SPEC_INFO[key.spec].kind === 'EC') {
      mechanism = ecdsaMechanism();
    } else if (rsaPadding === 'pkcs1') {
      mechanism = rsaPkcs1Mechanism();
      data = digestInfo(hash, digest);
    } else {
      mechanism = rsaPssMechanism(hash);
    }
    if (tokens.signWorkers) return this.signOnWorker(target, key, mechanism, data, keyUri, flushAtCheckPhase);
    const api = tokens.api;
    try {
      // C_SignInit is cheap and synchronous; the signature itself runs on a libuv thread.
      api.C_SignInit(session.handle, mechanism, key.handle);
    } catch (err) {
      throw tokens.onKeyError(err, 'C_SignInit', keyUri);
    }
    tokens.stats.signAttempts++;
    session.pinned = data;
    return new Promise<Buffer>((resolve, reject) => {
      api.C_Sign(session.handle, data, session.out, (err, signature) => {
        if (err) {
          tokens.stats.signFailures++;
          reject(tokens.onKeyError(err, 'C_Sign', keyUri));
          return;
        }
        tokens.stats.signOperations++;
        // Copy: session.out is reused by the session's next operation.
        resolve(Buffer.from(signature));
      });
    });
  }

  /**
   * C_SignInit + C_Sign on a signing thread, which finds the key by id and label with its own
   * session; the caller's pool session stays held (and `data` referenced) until it settles.
   */
  private async signOnWorker(
    target: KeyTarget,
    key: ResolvedKey,
    mechanism: Mechanism,
    data: Buffer,
    keyUri: string,
    flushAtCheckPhase: boolean,
  ): Promise<Buffer> {
    const tokens = this.tokens;
    let fn = 'C_SignInit';
    try {
      if (tokens.faults) {
        tokens.faults.check('C_SignInit');
        fn = 'C_Sign';
        tokens.faults.check('C_Sign');
      }
      const pool = tokens.signWorkers as SignWorkerPool;
      key.signKey ??= pool.keyIndex({ token: target.ref.token, id: target.ref.id, label: target.ref.object });
      const signature = await pool.sign(key.signKey, mechanism, data, flushAtCheckPhase);
      tokens.stats.signAttempts++;
      tokens.stats.signOperations++;
      return signature;
    } catch (err) {
      const method = (err as { method?: unknown }).method;
      if (typeof method === 'string') fn = method;
      if (fn === 'C_Sign') {
        tokens.stats.signAttempts++;
        tokens.stats.signFailures++;
      }
      throw tokens.onKeyError(err, fn, keyUri);
    }
  }
}

function checkPadding(spec: KeySpec, rsaPadding: SignOptions['rsaPadding']): void {
  if (rsaPadding !== undefined && KEY_SPEC_INFO[spec].kind === 'EC') {
    throw new DomainError(
      ErrorCode.UNSUPPORTED_ALGORITHM,
      `sign: rsaPadding '${rsaPadding}' does not apply to ${spec} keys`,
    );
  }
}
