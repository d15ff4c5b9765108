import { Body, Controller, Get, HttpCode, Param, Post, Query } from '@nestjs/common';
import { ApiBearerAuth, ApiTags } from '@nestjs/swagger';
import { DataSource } from 'typeorm';
import { Roles } from '../common/access.decorators';
import { Principal } from '../auth/principal';
import { CertificateEntity } from '../ca/certificate.entity';
import { derToPem } from '../pki/pem-codec';
import { normalizeSerialHex } from '../pki/serial-number';
import { DomainError, ErrorCode } from '../common/errors';
import { KeysService } from '../keys/keys.service';
import { RevokeDto } from './dto/revoke.dto';
import { RevocationService, RevocationView } from './revocation.service';

interface CertificateView {
  serial: string;
  kind: string;
  subject: string;
  notBefore: string;
  notAfter: string;
  status: 'good' | 'revoked';
  revokedAt: string | null;
  reason: string | null;
  invalidityDate: string | null;
  certificate: string;
}

function view(row: CertificateEntity): CertificateView {
  return {
    serial: row.serial,
    kind: row.kind,
    subject: row.subjectDn,
    notBefore: row.notBefore.toISOString(),
    notAfter: row.notAfter.toISOString(),
    status: row.revokedAt ? 'revoked' : 'good',
    revokedAt: row.revokedAt?.toISOString() ?? null,
    reason: row.revocationReason,
    invalidityDate: row.invalidityDate?.toISOString() ?? null,
    certificate: derToPem(row.der, 'CERTIFICATE'),
  };
}

@ApiTags('certificates')
@ApiBearerAuth()
@Controller('v1/certificates')
export class CertificatesController {
  constructor(
    private readonly dataSource: DataSource,
    private readonly keys: KeysService,
    private readonly revocations: RevocationService,
  ) {}

  @Get()
  @Roles('admin', 'security-officer', 'auditor')
  async list(@Query('key') key?: string): Promise<{ certificates: CertificateView[] }> {
    const rows = key !== undefined
      ? await this.keys.certificatesOf(key)
      : await this.dataSource.getRepository(CertificateEntity).find({ order: { createdAt: 'DESC' }, take: 1000 });
    return { certificates: rows.map(view) };
  }

  @Get(':serial')
  @Roles('admin', 'security-officer', 'auditor')
  async get(@Param('serial') serial: string): Promise<CertificateView> {
    const row = await this.dataSource.getRepository(CertificateEntity).findOneBy({ serial: normalizeSerialHex(serial) });
    if (!row) throw new DomainError(ErrorCode.NOT_FOUND, `no certificate with serial ${serial}`);
    return view(row);
  }

  @Post(':serial/revoke')
  @HttpCode(200)
  @Roles('admin', 'security-officer')
  revoke(@Param('serial') serial: string, @Body() body: RevokeDto, @Principal() principal: Principal): Promise<RevocationView> {
    return this.revocations.revoke(serial, body, principal.auditActor);
  }
}
