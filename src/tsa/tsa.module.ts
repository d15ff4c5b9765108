import { Inject, Logger, Module, OnModuleInit } from '@nestjs/common';
import { HttpAdapterHost } from '@nestjs/core';
import type { FastifyInstance } from 'fastify';
import { CaModule } from '../ca/ca.module';
import { SIGNET_CONFIG, SignetConfig } from '../config/config';
import { binaryBodyFor } from '../observability/body-types';
import { HealthService } from '../observability/health.service';
import { ClockSyncProbe } from './clock-sync.probe';
import { DevTsaBootstrap } from './dev-tsa.bootstrap';
import { TIMESTAMP_QUERY_TYPE, TsaController } from './tsa.controller';
import { TsaAuditSink } from './tsa-audit.sink';
import { TSA_EVENT_SINK } from './tsa-event-sink';
import { TsaSerialAllocator } from './tsa-serial.allocator';
import { TsaRepository } from './tsa.repository';
import { TsaService } from './tsa.service';

/**
 * The RFC 3161 timestamp authority: POST /tsa, the dev TSA hierarchy on first start, and the
 * clock-synchronisation readiness check.
 */
@Module({
  imports: [CaModule],
  controllers: [TsaController],
  providers: [
    TsaService,
    TsaRepository,
    TsaSerialAllocator,
    DevTsaBootstrap,
    TsaAuditSink,
    { provide: TSA_EVENT_SINK, useExisting: TsaAuditSink },
    { provide: ClockSyncProbe, useFactory: () => new ClockSyncProbe() },
  ],
  exports: [TsaService, ClockSyncProbe],
})
export class TsaModule implements OnModuleInit {
  private readonly logger = new Logger('Tsa');

  constructor(
    private readonly adapterHost: HttpAdapterHost,
    private readonly health: HealthService,
    private readonly clockSync: ClockSyncProbe,
    @Inject(SIGNET_CONFIG) private readonly config: SignetConfig,
  ) {}

  onModuleInit(): void {
    this.health.register('clock', async () => {
      const state = await this.clockSync.check();
      // Unknown (no source readable, e.g. in a container) is not a failure: see docs/timestamping.md.
      return { ok: state.synchronised !== false, ...state };
    });
    this.registerQueryParser();
  }

  /**
   * Fastify parses only JSON here (src/observability/body-types.ts). Queries are read up to the server's body limit
   * so that anything above SIGNET_TSA_MAX_QUERY_BYTES gets an RFC 3161 rejection instead of a 413;
   * bodies beyond the server limit are refused (413) before they are read.
   */
  private registerQueryParser(): void {
    const fastify = this.adapterHost.httpAdapter?.getInstance?.() as FastifyInstance | undefined;
    if (!fastify?.addContentTypeParser) return; // no HTTP server (CLI application context)
    if (fastify.hasContentTypeParser(TIMESTAMP_QUERY_TYPE)) return;
    const bodyLimit = Math.max(this.config.bodyLimitBytes, this.config.tsa.maxQueryBytes);
    fastify.addContentTypeParser(TIMESTAMP_QUERY_TYPE, { parseAs: 'buffer', bodyLimit }, binaryBodyFor('/tsa'));
    this.logger.debug?.(`registered the ${TIMESTAMP_QUERY_TYPE} parser (body limit ${bodyLimit} bytes)`);
  }
}
