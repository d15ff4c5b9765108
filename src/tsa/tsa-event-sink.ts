import type { HashAlgorithm } from '../pki/key-spec';

/** What the audit trail records for every timestamp issued (never the token itself). */
export interface TimestampIssuedEvent {
  /** TSTInfo serialNumber, decimal. */
  serial: string;
  hashAlgorithm: HashAlgorithm;
  /** The message imprint (hashedMessage), lower-case hex. */
  imprint: string;
  genTime: string;
  policy: string;
  /** Decimal nonce when the client sent one. */
  nonce?: string;
  certReq: boolean;
  /** The CA key generation whose TSA certificate signed, and that certificate's serial. */
  tsaGeneration: string;
  tsaCertificateSerial: string;
  /** Client address as the HTTP layer saw it. */
  clientAddress?: string;
}

/**
 * Seam between the TSA and the audit log. `timestampIssued` is awaited before the response goes
 * out, so a sink that fails (audit not writable) withholds the token: fail closed.
 */
export interface TsaEventSink {
  timestampIssued(event: TimestampIssuedEvent): Promise<void>;
}

export const TSA_EVENT_SINK = Symbol('TSA_EVENT_SINK');

/** The audit event type of an issued timestamp. */
export const TIMESTAMP_AUDIT_TYPE = 'tsa.timestamp';
