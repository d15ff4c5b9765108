import { ApiProperty, ApiPropertyOptional } from '@nestjs/swagger';
import { ArrayMaxSize, IsArray, IsBoolean, IsIn, IsObject, IsOptional, IsString, ValidateIf } from 'class-validator';
import { TRUST_TARGET_KINDS } from '../drivers/trust-target';
import { LAYER_KINDS } from '../../truststore/bundle-formats';

export class CreateRegionDto {
  @ApiProperty({ example: 'eu-west' })
  @IsString()
  name!: string;

  @ApiPropertyOptional({
    description: "its verifiers cannot reach Signet's OCSP/CRL URLs and rely on the bundle's CRLs",
  })
  @IsOptional()
  @IsBoolean()
  offline?: boolean;
}

/** Target fields shared by create and PATCH; contents of nested objects are checked by the service and the driver factory. */
class TargetFieldsDto {
  @ApiPropertyOptional({
    example: 'https://registry.example.com',
    description:
      'must be allowed by SIGNET_DISTRIBUTION_ALLOWED_HOSTS when set; link-local, cloud metadata and unspecified addresses (any spelling) are refused, loopback unless SIGNET_DISTRIBUTION_ALLOW_LOOPBACK (400 ENDPOINT_NOT_ALLOWED). PATCH: moving to another scheme, host or port needs `credentials` in the same request when some are stored (400 CREDENTIALS_REQUIRED)',
  })
  @IsOptional()
  @IsString()
  endpoint?: string;

  @ApiPropertyOptional({ example: 'production' })
  @IsOptional()
  @IsString()
  truststore?: string;

  @ApiPropertyOptional({ default: true, description: 'counts for the rotation gate' })
  @IsOptional()
  @IsBoolean()
  required?: boolean;

  @ApiPropertyOptional({
    description:
      "write-only: {username, password} | {token} | {kubeconfig}; null removes them. Sealed for the endpoint's origin (scheme, host, port) and never sent anywhere else",
    example: { username: 'robot$signet', password: '…' },
  })
  @IsOptional()
  @ValidateIf((_o, v) => v !== null)
  @IsObject()
  credentials?: Record<string, unknown> | null;

  @ApiPropertyOptional({
    example: 'signet/truststore',
    description: 'oci-registry: repository; harbor: repository in the project (or "project/repository")',
  })
  @IsOptional()
  @IsString()
  repository?: string;

  @ApiPropertyOptional({ description: 'harbor: project' })
  @IsOptional()
  @IsString()
  project?: string;

  @ApiPropertyOptional({ description: 'kubernetes: namespace of the ConfigMap' })
  @IsOptional()
  @IsString()
  namespace?: string;

  @ApiPropertyOptional({ default: 'signet-truststore' })
  @IsOptional()
  @IsString()
  configMapName?: string;

  @ApiPropertyOptional({
    example: { keyManagementProviderName: 'signet-roots', verifier: true },
    description:
      'kubernetes: also apply a Ratify KeyManagementProvider (the roots); with verifier: true also <name>-tsa (the TSA roots) and the Notation Verifier <name> listing both',
  })
  @IsOptional()
  @ValidateIf((_o, v) => v !== null)
  @IsObject()
  ratify?: { keyManagementProviderName: string; verifier?: boolean } | null;

  @ApiPropertyOptional()
  @IsOptional()
  @IsBoolean()
  forceConflicts?: boolean;

  @ApiPropertyOptional({
    example: { notation: true, projects: ['apps'] },
    description:
      "harbor: project content-trust metadata to enforce on `projects` (default: the truststore's project). " +
      "Switching it on in the truststore's own project is refused (400): Harbor would answer 412 to pulls of the unsigned truststore artifact.",
  })
  @IsOptional()
  @ValidateIf((_o, v) => v !== null)
  @IsObject()
  contentTrust?: { notation?: boolean; cosign?: boolean; projects?: string[] } | null;

  @ApiPropertyOptional({ example: { caPem: '-----BEGIN CERTIFICATE-----…' } })
  @IsOptional()
  @ValidateIf((_o, v) => v !== null)
  @IsObject()
  tls?: { caPem?: string; insecure?: boolean } | null;

  @ApiPropertyOptional({ type: [String], description: 'hosts redirects and token realms of this target may lead to' })
  @IsOptional()
  @IsArray()
  @ArrayMaxSize(32)
  @IsString({ each: true })
  allowedHosts?: string[];

  @ApiPropertyOptional({ enum: LAYER_KINDS, isArray: true, description: 'bundle layers pushed (default: all)' })
  @IsOptional()
  @IsArray()
  @IsIn(LAYER_KINDS as unknown as string[], { each: true })
  formats?: string[];
}

export class CreateTargetDto extends TargetFieldsDto {
  @ApiProperty({ example: 'registry-1' })
  @IsString()
  name!: string;

  @ApiProperty({ enum: TRUST_TARGET_KINDS })
  @IsIn(TRUST_TARGET_KINDS as unknown as string[])
  kind!: string;

  @ApiProperty({
    example: 'https://registry.example.com',
    description:
      'must be allowed by SIGNET_DISTRIBUTION_ALLOWED_HOSTS when set; link-local, metadata and unspecified addresses are refused (400 ENDPOINT_NOT_ALLOWED)',
  })
  @IsString()
  declare endpoint: string;

  @ApiProperty({ example: 'production' })
  @IsString()
  declare truststore: string;
}

export class UpdateTargetDto extends TargetFieldsDto {}
