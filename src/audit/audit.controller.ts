import { Controller, Get, Headers, HttpCode, Post, Query, Res } from '@nestjs/common';
import { ApiBearerAuth, ApiTags } from '@nestjs/swagger';
import type { FastifyReply } from 'fastify';
import { DomainError, ErrorCode } from '../common/errors';
import { Roles } from '../common/access.decorators';
import { AuditCheckpointService } from './audit-checkpoint.service';
import { AuditExportService } from './audit-export.service';
import { AuditVerifier } from './audit-verifier';
import { ListAuditQueryDto, ListCheckpointsQueryDto } from './dto/list-audit-query.dto';
import { VerifyAuditQueryDto } from './dto/verify-audit-query.dto';
import { AuditCheckpointView, AuditEventView, AuditVerifyResult } from './audit.types';

const NDJSON = 'application/x-ndjson';

@ApiTags('audit')
@ApiBearerAuth()
@Controller('v1/audit')
@Roles('admin', 'security-officer', 'auditor')
export class AuditController {
  constructor(
    private readonly exports: AuditExportService,
    private readonly verifier: AuditVerifier,
    private readonly checkpoints: AuditCheckpointService,
  ) {}

  /** Events after a seq: JSON pages, or the whole tail as NDJSON with Accept: application/x-ndjson. */
  @Get()
  async list(
    @Query() query: ListAuditQueryDto,
    @Headers('accept') accept: string | undefined,
    @Headers('authorization') authorization: string | undefined,
    @Res() reply: FastifyReply,
  ): Promise<void> {
    // Only a SIEM's token (a bearer request) moves the export watermark that retention consults;
    // a browser's read with the console cookie never counts as an export.
    const markExported = authorization !== undefined;
    if (accept?.includes(NDJSON)) {
      if (query.order === 'desc')
        throw new DomainError(
          ErrorCode.VALIDATION_ERROR,
          'order=desc is for JSON pages; NDJSON exports run oldest first',
        );
      const stream = await this.exports.stream(query, { markExported });
      await reply.header('content-type', `${NDJSON}; charset=utf-8`).header('cache-control', 'no-store').send(stream);
      return;
    }
    if (query.limit !== undefined && query.limit > 1000) {
      throw new DomainError(
        ErrorCode.VALIDATION_ERROR,
        'limit must not be greater than 1000 for JSON; use NDJSON for bulk export',
      );
    }
    const page: { events: AuditEventView[]; next: string | null } = await this.exports.page(query, { markExported });
    await reply.header('cache-control', 'no-store').send(page);
  }

  /** Recomputes the chain (from the last good checkpoint, or everything with ?full=true). */
  @Get('verify')
  async verify(@Query() query: VerifyAuditQueryDto): Promise<AuditVerifyResult> {
    const { headHash: _internal, ...result } = await this.verifier.verify(
      query.full === 'true' ? 'full' : 'incremental',
    );
    return result;
  }

  /** Signed chain heads, for keeping off-site. */
  @Get('checkpoints')
  async listCheckpoints(@Query() query: ListCheckpointsQueryDto): Promise<{ checkpoints: AuditCheckpointView[] }> {
    return { checkpoints: await this.checkpoints.list(query) };
  }

  /** Checkpoint the current head now. */
  @Post('checkpoints')
  @HttpCode(201)
  @Roles('admin', 'security-officer')
  async createCheckpoint(): Promise<AuditCheckpointView> {
    return this.checkpoints.create();
  }
}
