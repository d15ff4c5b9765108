import { ApiPropertyOptional } from '@nestjs/swagger';
import { IsOptional, IsString, Matches, MaxLength } from 'class-validator';

/** GET /v1/certificates filters: at most one of them (none: the newest 1000 certificates). */
export class SearchCertificatesDto {
  @ApiPropertyOptional({ description: 'Certificates of this signing key, every version' })
  @IsOptional()
  @IsString()
  @MaxLength(200)
  key?: string;

  @ApiPropertyOptional({
    description: 'The certificate with this serial (hex, any case, leading zeros and colons allowed)',
  })
  @IsOptional()
  @IsString()
  @MaxLength(200)
  serial?: string;

  @ApiPropertyOptional({ description: 'Certificates whose subject DN contains this text (case-insensitive)' })
  @IsOptional()
  @IsString()
  @MaxLength(200)
  subject?: string;

  @ApiPropertyOptional({
    description:
      'What signed this artifact: the certificates of the key versions whose `sign` audit rows name it ("sha256:<hex>")',
    example: 'sha256:…',
  })
  @IsOptional()
  @Matches(/^sha(256:[0-9a-f]{64}|384:[0-9a-f]{96}|512:[0-9a-f]{128})$/, {
    message: 'artifact must be an OCI digest such as sha256:<64 lower-case hex>',
  })
  artifact?: string;
}
