import { randomBytes } from 'node:crypto';
import * as pkcs11js from 'pkcs11js';
import { DomainError, ErrorCode } from '../common/errors';
import { isKeySpec, type KeySpec } from '../pki/key-spec';
import type { KeyManager } from './key-manager';
import type { CreateKeyRequest, KeyInfo, KeyListing, KeyRole } from './key-store';
import { keyPairTemplates } from './key-templates';
import type { Template } from './pkcs11-api';
import { toDomainError, toPkcs11Error } from './pkcs11-errors';
import { type Pkcs11Tokens, notFound, readUlong } from './pkcs11-tokens';
import { formatPkcs11Uri } from './pkcs11-uri';
import type { PooledSession, SessionPool } from './session-pool';

/** KeyManager over PKCS#11: key pairs generated in the token, found by URI, destroyed on request. */
export class Pkcs11KeyManager implements KeyManager {
  constructor(private readonly tokens: Pkcs11Tokens) {}

  async createKey(request: CreateKeyRequest): Promise<KeyInfo> {
    const { spec, label } = request ?? ({} as CreateKeyRequest);
    const role: KeyRole = request?.role ?? 'signing';
    if (!isKeySpec(spec))
      throw new DomainError(ErrorCode.UNSUPPORTED_ALGORITHM, `createKey: unsupported key spec '${String(spec)}'`);
    if (typeof label !== 'string' || label.trim() === '')
      throw new DomainError(ErrorCode.VALIDATION_ERROR, "createKey: 'label' cannot be empty");
    if (Buffer.byteLength(label, 'utf8') > 128)
      throw new DomainError(ErrorCode.VALIDATION_ERROR, "createKey: 'label' must be at most 128 bytes");
    if (role !== 'signing' && role !== 'ca')
      throw new DomainError(ErrorCode.VALIDATION_ERROR, `createKey: unknown role '${String(role)}'`);
    if (request.id !== undefined && (!Buffer.isBuffer(request.id) || request.id.length < 1 || request.id.length > 64)) {
      throw new DomainError(ErrorCode.VALIDATION_ERROR, "createKey: 'id' must be 1..64 bytes");
    }
    const id = request.id ? Buffer.from(request.id) : randomBytes(16);
    const pool = this.tokens.poolFor(role);
    this.tokens.requireFeature('createKey', pool, spec);
    const uri = formatPkcs11Uri({ token: pool.tokenLabel, id, object: label });
    try {
      // One key-pair creation at a time per token in this process. SoftHSM2's file object store
      // fails concurrent C_GenerateKeyPair calls now and then with CKR_GENERAL_ERROR (SoftHSMv2
      // issue #573; seen here on six concurrent generations); key creation is rare, so every module
      // gets the same order. It also serialises creations of one id; the twin check below covers
      // other replicas.
      return await this.tokens.withLock(`create-key:${pool.tokenLabel}`, () =>
        // Not retried: a key pair may have been created before the fault was reported.
        pool.run('createKey', (session) => this.createKeyOnSession(session, pool, spec, id, label, role, uri), false),
      );
    } catch (err) {
      throw toDomainError('createKey', err);
    }
  }

  private async createKeyOnSession(
    session: PooledSession,
    pool: SessionPool,
    spec: KeySpec,
    id: Buffer,
    label: string,
    role: KeyRole,
    uri: string,
  ): Promise<KeyInfo> {
    const tokens = this.tokens;
    // PKCS#11 never overwrites: a second C_GenerateKeyPair with this id would silently create twins.
    if (
      tokens.findObjects(
        session,
        [
          { type: pkcs11js.CKA_TOKEN, value: true },
          { type: pkcs11js.CKA_ID, value: id },
        ],
        1,
      ).length > 0
    ) {
      throw new DomainError(
        ErrorCode.ALREADY_EXISTS,
        `createKey: id ${id.toString('hex')} already exists on token '${pool.tokenLabel}'`,
      );
    }
    let pair: pkcs11js.KeyPair;
    try {
      pair = await this.generateKeyPair(session, keyPairTemplates(spec, id, label, tokens.copyableSupported));
    } catch (err) {
      if (!tokens.copyableSupported || toPkcs11Error(err, 'C_GenerateKeyPair')?.ckr !== 'CKR_ATTRIBUTE_TYPE_INVALID')
        throw err;
      tokens.copyableSupported = false;
      tokens.logger.warn('hsm: token does not support CKA_COPYABLE; generating keys without it');
      pair = await this.generateKeyPair(session, keyPairTemplates(spec, id, label, false));
    }
    tokens.stats.keysGenerated++;
    const twins = tokens.findObjects(
      session,
      [
        { type: pkcs11js.CKA_CLASS, value: pkcs11js.CKO_PRIVATE_KEY },
        { type: pkcs11js.CKA_ID, value: id },
      ],
      2,
    );
    if (twins.length > 1) {
      // Another replica created the same id between our lookup and our generation: keep theirs.
      tokens.destroyQuietly(session, pair.privateKey);
      tokens.destroyQuietly(session, pair.publicKey);
      throw new DomainError(
        ErrorCode.ALREADY_EXISTS,
        `createKey: id ${id.toString('hex')} already exists on token '${pool.tokenLabel}'`,
      );
    }
    const publicKeySpki = tokens.readSpki(session, pair.publicKey, spec);
    tokens.publicKeys.set(uri, { spec, spki: publicKeySpki });
    return { uri, spec, role, tokenLabel: pool.tokenLabel, id: id.toString('hex'), label, publicKeySpki };
  }

  private generateKeyPair(
    session: PooledSession,
    templates: ReturnType<typeof keyPairTemplates>,
  ): Promise<pkcs11js.KeyPair> {
    // RSA-4096 generation takes seconds: run it on the libuv pool like signing.
    session.pinned = templates;
    return new Promise((resolve, reject) => {
      this.tokens.api.C_GenerateKeyPair(
        session.handle,
        templates.mechanism,
        templates.publicKey,
        templates.privateKey,
        (err, keys) => {
          if (err) reject(toPkcs11Error(err, 'C_GenerateKeyPair') ?? err);
          else resolve(keys);
        },
      );
    });
  }

  async getPublicKey(keyUri: string): Promise<Buffer> {
    return (await this.describeKey(keyUri)).publicKeySpki;
  }

  async describeKey(keyUri: string): Promise<KeyInfo> {
    const tokens = this.tokens;
    const target = tokens.target('describeKey', keyUri);
    try {
      return await target.pool.run('describeKey', (session) => {
        const key = tokens.keyOnSession(session, target, keyUri, 'describeKey');
        const spki = tokens.publicKeyOnSession(session, target, keyUri, key.spec);
        return {
          uri: keyUri,
          spec: key.spec,
          role: target.pool === tokens.caPool ? 'ca' : 'signing',
          tokenLabel: target.ref.token,
          id: target.ref.id.toString('hex'),
          label: key.label,
          publicKeySpki: spki,
        } satisfies KeyInfo;
      });
    } catch (err) {
      throw toDomainError('describeKey', err);
    }
  }

  async destroyKey(keyUri: string): Promise<void> {
    const tokens = this.tokens;
    const target = tokens.target('destroyKey', keyUri);
    try {
      await target.pool.run('destroyKey', (session) => {
        const template: Template = [
          { type: pkcs11js.CKA_TOKEN, value: true },
          { type: pkcs11js.CKA_ID, value: target.ref.id },
        ];
        if (target.ref.object !== undefined) template.push({ type: pkcs11js.CKA_LABEL, value: target.ref.object });
        const handles = [pkcs11js.CKO_PRIVATE_KEY, pkcs11js.CKO_PUBLIC_KEY].flatMap((cls) =>
          tokens.findObjects(session, [...template, { type: pkcs11js.CKA_CLASS, value: cls }], 16),
        );
        // Other spellings of this URI may be cached too; destroying is rare, so forget everything.
        tokens.keys.clear();
        tokens.publicKeys.clear();
        if (handles.length === 0) {
          tokens.throwIfLoggedOut(session);
          throw notFound('destroyKey', keyUri);
        }
        for (const handle of handles)
          tokens.call('C_DestroyObject', () => tokens.api.C_DestroyObject(session.handle, handle));
        tokens.stats.keysDestroyed++;
      });
    } catch (err) {
      throw toDomainError('destroyKey', err);
    }
  }

  async listKeys(role?: KeyRole): Promise<KeyListing[]> {
    const pools = role ? [this.tokens.poolFor(role)] : this.tokens.pools;
    const listings: KeyListing[] = [];
    try {
      for (const pool of pools) {
        listings.push(...(await pool.run('listKeys', (session) => this.listOnSession(session, pool))));
      }
    } catch (err) {
      throw toDomainError('listKeys', err);
    }
    return listings;
  }

  private listOnSession(session: PooledSession, pool: SessionPool): KeyListing[] {
    const tokens = this.tokens;
    // Logged out, the token would list public keys only and every pair would look half-missing.
    tokens.throwIfLoggedOut(session);
    const byId = new Map<string, KeyListing>();
    for (const cls of [pkcs11js.CKO_PRIVATE_KEY, pkcs11js.CKO_PUBLIC_KEY]) {
      const handles = tokens.findObjects(
        session,
        [
          { type: pkcs11js.CKA_TOKEN, value: true },
          { type: pkcs11js.CKA_CLASS, value: cls },
        ],
        Infinity,
      );
      for (const handle of handles) {
        const [idAttr, labelAttr, typeAttr] = tokens.call('C_GetAttributeValue', () =>
          tokens.api.C_GetAttributeValue(session.handle, handle, [
            { type: pkcs11js.CKA_ID },
            { type: pkcs11js.CKA_LABEL },
            { type: pkcs11js.CKA_KEY_TYPE },
          ]),
        );
        const id = idAttr.value.toString('hex');
        let listing = byId.get(id);
        if (!listing) {
          const label = labelAttr.value.toString('utf8');
          listing = {
            uri: formatPkcs11Uri({ token: pool.tokenLabel, id: idAttr.value, object: label }),
            role: pool.options.role,
            tokenLabel: pool.tokenLabel,
            id,
            label,
            hasPrivateKey: false,
            hasPublicKey: false,
          };
          byId.set(id, listing);
        }
        if (cls === pkcs11js.CKO_PRIVATE_KEY) listing.hasPrivateKey = true;
        else listing.hasPublicKey = true;
        listing.spec ??= tokens.specOf(session, handle, readUlong(typeAttr.value));
      }
    }
    return [...byId.values()];
  }
}
