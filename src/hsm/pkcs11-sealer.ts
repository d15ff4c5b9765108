import { randomBytes } from 'node:crypto';
import * as pkcs11js from 'pkcs11js';
import { DomainError, ErrorCode } from '../common/errors';
import type { SealingKeyInfo } from './key-store';
import { aesGcmMechanism, sealingKeyTemplate } from './key-templates';
import type { Handle, Mechanism } from './pkcs11-api';
import { toDomainError, toPkcs11Error } from './pkcs11-errors';
import type { Pkcs11Tokens } from './pkcs11-tokens';
import type { Sealer } from './sealer';
import { GCM_TAG_LENGTH, decodeSealedEnvelope, encodeSealedEnvelope, sealingAad } from './sealed-envelope';
import type { PooledSession, SessionPool } from './session-pool';

interface SealingKey {
  handle: Handle;
  id: Buffer;
  label: string;
  generation: number;
}

interface SealingKeys {
  epoch: number;
  loadedAt: number;
  byId: Map<string, SealingKey>;
  current?: SealingKey;
}

const MAX_SEALED_PLAINTEXT = 64 * 1024;
const GCM_IV_LENGTH = 12;
/** Another replica may rotate the sealing key: look for a newer generation this often. */
const SEALING_KEYS_REFRESH_MS = 60_000;

/** Sealer over PKCS#11: AES-256-GCM in the signing token, under generations of sealing keys. */
export class Pkcs11Sealer implements Sealer {
  private sealingKeys?: SealingKeys;

  constructor(private readonly tokens: Pkcs11Tokens) {}

  async seal(recordId: string, plaintext: Buffer): Promise<Buffer> {
    checkRecordId('seal', recordId);
    // Empty input is refused too: pkcs11js passes a NULL pointer for it, which modules reject.
    if (!Buffer.isBuffer(plaintext) || plaintext.length === 0 || plaintext.length > MAX_SEALED_PLAINTEXT) {
      throw new DomainError(
        ErrorCode.VALIDATION_ERROR,
        `seal: plaintext must be a Buffer of 1..${MAX_SEALED_PLAINTEXT} bytes`,
      );
    }
    const pool = this.tokens.poolFor('signing');
    this.tokens.requireFeature('seal', pool, 'sealing');
    try {
      if (!this.sealingKeys?.current) {
        await this.tokens.withLock('sealing', () =>
          pool.run('seal', (session) => this.ensureSealingKey(session, pool)),
        );
      }
      return await pool.run('seal', (session) => this.sealOnSession(session, pool, recordId, plaintext));
    } catch (err) {
      throw toDomainError('seal', err);
    }
  }

  private async sealOnSession(
    session: PooledSession,
    pool: SessionPool,
    recordId: string,
    plaintext: Buffer,
  ): Promise<Buffer> {
    const { api } = this.tokens;
    const key = this.loadSealingKeys(session, pool).current;
    if (!key) throw new DomainError(ErrorCode.INTERNAL, 'seal: the sealing key disappeared from the token');
    const aad = sealingAad(key.id, recordId);
    const iv = this.tokens.call('C_GenerateRandom', () =>
      api.C_GenerateRandom(session.handle, Buffer.alloc(GCM_IV_LENGTH)),
    );
    const mechanism = (ivBuffer: Buffer): Mechanism => aesGcmMechanism(ivBuffer, aad, GCM_TAG_LENGTH * 8);
    try {
      api.C_EncryptInit(session.handle, mechanism(iv), key.handle);
    } catch (err) {
      const p11 = toPkcs11Error(err, 'C_EncryptInit');
      if (p11?.ckr !== 'CKR_MECHANISM_PARAM_INVALID') throw p11 ?? err;
      // FIPS-mode HSMs refuse a caller's IV and write their own into the (zeroed) IV buffer, which
      // pkcs11js passes by pointer — so it appears in `iv` below.
      iv.fill(0);
      this.tokens.call('C_EncryptInit', () => api.C_EncryptInit(session.handle, mechanism(iv), key.handle));
    }
    const out = Buffer.alloc(plaintext.length + GCM_TAG_LENGTH + 16);
    const ciphertext = await this.cryptAsync(session, 'C_Encrypt', plaintext, out, [iv, aad]);
    if (iv.every((b) => b === 0)) throw new DomainError(ErrorCode.INTERNAL, 'seal: the token generated no IV');
    this.tokens.stats.sealOperations++;
    return encodeSealedEnvelope({ keyId: key.id, iv: Buffer.from(iv), ciphertext });
  }

  async unseal(recordId: string, sealed: Buffer): Promise<Buffer> {
    checkRecordId('unseal', recordId);
    let envelope: ReturnType<typeof decodeSealedEnvelope>;
    try {
      envelope = decodeSealedEnvelope(sealed);
    } catch (err) {
      throw new DomainError(ErrorCode.INTERNAL, `unseal: ${(err as Error).message}`);
    }
    const pool = this.tokens.poolFor('signing');
    this.tokens.requireFeature('unseal', pool, 'sealing');
    const keyId = envelope.keyId.toString('hex');
    try {
      return await pool.run('unseal', async (session) => {
        const key = this.loadSealingKeys(session, pool, keyId).byId.get(keyId);
        if (!key)
          throw new DomainError(
            ErrorCode.INTERNAL,
            `unseal: sealing key ${keyId} is not in token '${pool.tokenLabel}'`,
          );
        const aad = sealingAad(key.id, recordId);
        const iv = Buffer.from(envelope.iv);
        this.tokens.call('C_DecryptInit', () =>
          this.tokens.api.C_DecryptInit(session.handle, aesGcmMechanism(iv, aad, GCM_TAG_LENGTH * 8), key.handle),
        );
        let plaintext: Buffer;
        try {
          plaintext = await this.cryptAsync(
            session,
            'C_Decrypt',
            envelope.ciphertext,
            Buffer.alloc(envelope.ciphertext.length),
            [iv, aad],
          );
        } catch (err) {
          const p11 = toPkcs11Error(err, 'C_Decrypt');
          // SoftHSM2 reports a GCM tag mismatch as CKR_GENERAL_ERROR; the standard says ENCRYPTED_DATA_INVALID.
          if (
            p11 &&
            ['CKR_GENERAL_ERROR', 'CKR_ENCRYPTED_DATA_INVALID', 'CKR_ENCRYPTED_DATA_LEN_RANGE'].includes(p11.ckr)
          ) {
            throw new DomainError(
              ErrorCode.INTERNAL,
              'unseal: authentication failed (the sealed value does not belong to this record or was altered)',
              {
                ckr: p11.ckr,
              },
            );
          }
          throw err;
        }
        this.tokens.stats.unsealOperations++;
        return plaintext;
      });
    } catch (err) {
      throw toDomainError('unseal', err);
    }
  }

  async rotateSealingKey(): Promise<SealingKeyInfo> {
    const pool = this.tokens.poolFor('signing');
    this.tokens.requireFeature('rotateSealingKey', pool, 'sealing');
    try {
      return await this.tokens.withLock('sealing', () =>
        pool.run(
          'rotateSealingKey',
          (session) => {
            const keys = this.loadSealingKeys(session, pool, undefined, true);
            const key = this.createSealingKey(session, pool, (keys.current?.generation ?? 0) + 1);
            return { keyId: key.id.toString('hex'), label: key.label, generation: key.generation };
          },
          false,
        ),
      );
    } catch (err) {
      throw toDomainError('rotateSealingKey', err);
    }
  }

  private ensureSealingKey(session: PooledSession, pool: SessionPool): void {
    const keys = this.loadSealingKeys(session, pool, undefined, true);
    if (!keys.current) this.createSealingKey(session, pool, 1);
  }

  private createSealingKey(session: PooledSession, pool: SessionPool, generation: number): SealingKey {
    const tokens = this.tokens;
    const id = randomBytes(16);
    const label = `${tokens.sealingKeyLabelPrefix}-${generation}`;
    const generate = (withCopyable: boolean): Handle =>
      tokens.api.C_GenerateKey(
        session.handle,
        { mechanism: pkcs11js.CKM_AES_KEY_GEN },
        sealingKeyTemplate(id, label, withCopyable),
      );
    let handle: Handle;
    try {
      handle = generate(tokens.copyableSupported);
    } catch (err) {
      const p11 = toPkcs11Error(err, 'C_GenerateKey');
      if (!tokens.copyableSupported || p11?.ckr !== 'CKR_ATTRIBUTE_TYPE_INVALID') throw p11 ?? err;
      tokens.copyableSupported = false;
      handle = tokens.call('C_GenerateKey', () => generate(false));
    }
    const key: SealingKey = { handle, id, label, generation };
    const keys = this.loadSealingKeys(session, pool);
    keys.byId.set(id.toString('hex'), key);
    keys.current = key;
    tokens.logger.log(`hsm: sealing key generation ${generation} created (id ${id.toString('hex')})`);
    return key;
  }

  /**
   * Sealing keys of the signing token, cached per pool epoch. Generation n is labelled
   * `<prefix>-<n>`; the highest generation seals, every generation unseals.
   */
  private loadSealingKeys(session: PooledSession, pool: SessionPool, wantedId?: string, reload = false): SealingKeys {
    const tokens = this.tokens;
    const cached = this.sealingKeys;
    const fresh = cached && cached.epoch === pool.epoch && Date.now() - cached.loadedAt < SEALING_KEYS_REFRESH_MS;
    if (fresh && !reload && (wantedId === undefined || cached.byId.has(wantedId))) return cached;
    const prefix = `${tokens.sealingKeyLabelPrefix}-`;
    const keys: SealingKeys = { epoch: pool.epoch, loadedAt: Date.now(), byId: new Map() };
    const handles = tokens.findObjects(
      session,
      [
        { type: pkcs11js.CKA_TOKEN, value: true },
        { type: pkcs11js.CKA_CLASS, value: pkcs11js.CKO_SECRET_KEY },
        { type: pkcs11js.CKA_KEY_TYPE, value: pkcs11js.CKK_AES },
      ],
      Infinity,
    );
    for (const handle of handles) {
      const [idAttr, labelAttr] = tokens.call('C_GetAttributeValue', () =>
        tokens.api.C_GetAttributeValue(session.handle, handle, [
          { type: pkcs11js.CKA_ID },
          { type: pkcs11js.CKA_LABEL },
        ]),
      );
      const label = labelAttr.value.toString('utf8');
      if (!label.startsWith(prefix) || !/^\d+$/.test(label.slice(prefix.length))) continue;
      const key: SealingKey = {
        handle,
        id: Buffer.from(idAttr.value),
        label,
        generation: Number(label.slice(prefix.length)),
      };
      keys.byId.set(key.id.toString('hex'), key);
      // Two replicas may create the same generation at once: break the tie deterministically.
      const current = keys.current;
      if (
        !current ||
        key.generation > current.generation ||
        (key.generation === current.generation && key.id.compare(current.id) < 0)
      ) {
        keys.current = key;
      }
    }
    if (handles.length === 0) tokens.throwIfLoggedOut(session);
    this.sealingKeys = keys;
    return keys;
  }

  private cryptAsync(
    session: PooledSession,
    fn: 'C_Encrypt' | 'C_Decrypt',
    input: Buffer,
    out: Buffer,
    alsoPinned: Buffer[],
  ): Promise<Buffer> {
    const { api } = this.tokens;
    session.pinned = [input, out, ...alsoPinned];
    return new Promise((resolve, reject) => {
      const done = (err: Error | null, result: Buffer): void => {
        if (err) reject(toPkcs11Error(err, fn) ?? err);
        else resolve(Buffer.from(result));
      };
      if (fn === 'C_Encrypt') api.C_Encrypt(session.handle, input, out, done as (e: Error, d: Buffer) => void);
      else api.C_Decrypt(session.handle, input, out, done as (e: Error, d: Buffer) => void);
    });
  }
}

function checkRecordId(operation: string, recordId: string): void {
  if (typeof recordId !== 'string' || recordId === '' || Buffer.byteLength(recordId, 'utf8') > 1024) {
    throw new DomainError(ErrorCode.VALIDATION_ERROR, `${operation}: 'recordId' must be 1..1024 bytes`);
  }
}
