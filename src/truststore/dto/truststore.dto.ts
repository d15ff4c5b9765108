import { ApiProperty, ApiPropertyOptional } from '@nestjs/swagger';
import { ArrayMaxSize, IsArray, IsObject, IsOptional, IsString } from 'class-validator';

export class TrustPolicySettingsDto {
  registryScopes?: string[];
  level?: 'strict' | 'permissive' | 'audit';
}

export class TrustManagerSettingsDto {
  namespaceSelector?: {
    matchLabels?: Record<string, string>;
    matchExpressions?: Array<{ key: string; operator: string; values?: string[] }>;
  };
}

const TRUST_MANAGER_EXAMPLE = { namespaceSelector: { matchLabels: { 'signet.io/trust': 'true' } } };
const TRUST_MANAGER_DESCRIPTION =
  'trust-manager Bundle settings: the namespaces its ConfigMap is written into (a Kubernetes label selector; {} = every namespace). ' +
  'Default: namespaces labelled signet.io/trust=true. A change makes a new truststore version.';

export class CreateTruststoreDto {
  @ApiProperty({ example: 'production', description: 'DNS label; also the Notation trust store name' })
  @IsString()
  name!: string;

  @ApiProperty({
    type: [String],
    example: ['prod-root'],
    description: 'root CA names; every usable key generation of each is included',
  })
  @IsArray()
  @ArrayMaxSize(32)
  @IsString({ each: true })
  cas!: string[];

  @ApiPropertyOptional({
    example: { registryScopes: ['registry.example.com/app'], level: 'strict' },
    description: 'Notation trust policy settings (default: all scopes, strict)',
  })
  @IsOptional()
  @IsObject()
  trustPolicy?: TrustPolicySettingsDto;

  @ApiPropertyOptional({ example: TRUST_MANAGER_EXAMPLE, description: TRUST_MANAGER_DESCRIPTION })
  @IsOptional()
  @IsObject()
  trustManager?: TrustManagerSettingsDto;
}

export class UpdateTruststoreDto {
  @ApiPropertyOptional({ type: [String] })
  @IsOptional()
  @IsArray()
  @ArrayMaxSize(32)
  @IsString({ each: true })
  cas?: string[];

  @ApiPropertyOptional()
  @IsOptional()
  @IsObject()
  trustPolicy?: TrustPolicySettingsDto;

  @ApiPropertyOptional({
    example: TRUST_MANAGER_EXAMPLE,
    description: `${TRUST_MANAGER_DESCRIPTION} null restores the default.`,
    nullable: true,
  })
  @IsOptional()
  @IsObject()
  trustManager?: TrustManagerSettingsDto | null;
}
