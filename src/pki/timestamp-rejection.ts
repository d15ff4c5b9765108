/**
 * RFC 3161 §2.4.2 PKIFailureInfo: the bit numbers a rejection carries. Only the ones this TSA
 * produces are listed.
 */
export const PKI_FAILURE_BITS = {
  /** Unrecognised or unsupported algorithm identifier (message-imprint hash). */
  badAlg: 0,
  /** Transaction not permitted or supported. */
  badRequest: 2,
  /** The data submitted has the wrong format. */
  badDataFormat: 5,
  /** The TSA's time source is not available. */
  timeNotAvailable: 14,
  /** The requested TSA policy is not supported by the TSA. */
  unacceptedPolicy: 15,
  /** The requested extension is not supported by the TSA. */
  unacceptedExtension: 16,
  /** The request cannot be handled due to system failure. */
  systemFailure: 25,
} as const;

export type PkiFailureInfo = keyof typeof PKI_FAILURE_BITS;

/**
 * A query the TSA refuses. It is answered with a TimeStampResp of status `rejection`, this
 * failure info and the message as statusString — never with an HTTP error.
 */
export class TimestampRejection extends Error {
  constructor(
    readonly failInfo: PkiFailureInfo,
    message: string,
  ) {
    super(message);
    this.name = 'TimestampRejection';
  }
}
