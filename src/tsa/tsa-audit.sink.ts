import { Injectable, Logger, OnApplicationBootstrap, Optional } from '@nestjs/common';
import { AuditService } from '../audit/audit.service';
import { DomainError, ErrorCode } from '../common/errors';
import { TIMESTAMP_AUDIT_TYPE, TimestampIssuedEvent, TsaEventSink } from './tsa-event-sink';

/**
 * The default TsaEventSink: one audit event per timestamp (type `tsa.timestamp`, subject = the
 * serial), committed before the token is returned. AuditService comes from the global audit
 * module; without it timestamps are refused (fail closed) rather than issued unaudited.
 */
@Injectable()
export class TsaAuditSink implements TsaEventSink, OnApplicationBootstrap {
  private readonly logger = new Logger('Tsa');

  constructor(@Optional() private readonly audit?: AuditService) {}

  onApplicationBootstrap(): void {
    if (!this.audit)
      this.logger.error(
        'AuditService is not available: /tsa refuses every query (timestamps are never issued unaudited)',
      );
  }

  async timestampIssued(event: TimestampIssuedEvent): Promise<void> {
    if (!this.audit)
      throw new DomainError(ErrorCode.SERVICE_UNAVAILABLE, 'timestamp not issued: the audit log is not available');
    const { clientAddress, serial, ...data } = event;
    await this.audit.record({
      type: TIMESTAMP_AUDIT_TYPE,
      actor: clientAddress ? { address: clientAddress } : undefined,
      subject: serial,
      data: { serial, ...data },
    });
  }
}
