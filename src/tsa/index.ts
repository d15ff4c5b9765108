/** The RFC 3161 timestamp authority (POST /tsa) and what other modules use from it; the token encoding is in src/pki. */
export { TsaModule } from './tsa.module';
export { TSA_TIME, TsaService } from './tsa.service';
export type { TsaReply, TsaRootCertificate, TsaTime } from './tsa.service';
export { TIMESTAMP_AUDIT_TYPE, TSA_EVENT_SINK } from './tsa-event-sink';
export type { TimestampIssuedEvent, TsaEventSink } from './tsa-event-sink';
export { DEV_TSA_CA, DEV_TSA_ROOT_CA } from './dev-tsa.bootstrap';
export { ClockSyncProbe } from './clock-sync.probe';
export type { ClockSyncSource, ClockSyncState } from './clock-sync.probe';
