import { createHash, createPublicKey, verify } from 'node:crypto';
import type { KeyInfo } from '../../src/hsm/key-store';
import { Pkcs11KeyStore } from '../../src/hsm/pkcs11-key-store';
import { createTestToken } from '../support/softhsm';
import { SIGNING_MODES, openStore } from './hsm-test-kit';

const POOL_SIZE = 8;
const SIGNERS = 64;
const SIGNATURES = 64_000;

describe.each(SIGNING_MODES)(
  `${Pkcs11KeyStore.name} under concurrent signing, $mode`,
  ({ signWorkers, signThreadModule }) => {
    let store: Pkcs11KeyStore;
    let key: KeyInfo;

    beforeAll(async () => {
      const token = await createTestToken('concurrency');
      store = await openStore(token, { poolSize: POOL_SIZE, signWorkers, signThreadModule });
      key = await store.createKey({ spec: 'EC-256', label: 'busy-key' });
    });

    afterAll(() => store?.close());

    it(`serves ${SIGNERS} concurrent signers from ${POOL_SIZE} sessions: ${SIGNATURES} signatures on one key, each verified`, async () => {
      const publicKey = createPublicKey({ key: key.publicKeySpki, format: 'der', type: 'spki' });
      const signsBefore = store.counters().signOperations;
      let next = 0;
      let verified = 0;
      let maxInFlight = 0;
      let maxWaiting = 0;
      const signer = async (): Promise<void> => {
        while (next < SIGNATURES) {
          // A distinct message per signature: a signature returned to the wrong caller would not verify.
          const message = Buffer.from(`message ${next++}`);
          const digest = createHash('sha256').update(message).digest();
          const signature = await store.sign(key.uri, digest, { hash: 'SHA-256' });
          const health = store.health();
          maxInFlight = Math.max(maxInFlight, health.inFlight);
          maxWaiting = Math.max(maxWaiting, health.waiting);
          if (!verify('sha256', message, { key: publicKey, dsaEncoding: 'ieee-p1363' }, signature)) {
            throw new Error(`signature for '${message.toString()}' does not verify`);
          }
          verified++;
        }
      };
      await Promise.all(Array.from({ length: SIGNERS }, signer));

      expect(verified).toBe(SIGNATURES);
      expect(store.counters().signOperations - signsBefore).toBe(SIGNATURES);
      expect(maxInFlight).toBeLessThanOrEqual(POOL_SIZE);
      expect(maxWaiting).toBeGreaterThan(0);
      expect(store.health()).toMatchObject({
        state: 'ready',
        sessions: POOL_SIZE,
        configuredSessions: POOL_SIZE,
        inFlight: 0,
        waiting: 0,
      });
    });
  },
);
