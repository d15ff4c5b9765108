import { ApiProperty, ApiPropertyOptional } from '@nestjs/swagger';
import {
  ArrayMaxSize,
  IsArray,
  IsBoolean,
  IsInt,
  IsObject,
  IsOptional,
  IsString,
  Max,
  MaxLength,
  Min,
} from 'class-validator';
import { ASYMMETRIC_ALGORITHMS } from '../identity-admin.service';

// Shapes for validation and OpenAPI; IdentityAdminService checks every field again (names, URLs, algorithms).

export class CreateIdentityProviderDto {
  @ApiProperty({ example: 'github-actions' })
  @IsString()
  @MaxLength(100)
  name!: string;

  @ApiProperty({
    example: 'https://token.actions.githubusercontent.com',
    description: 'Exactly as the issuer writes `iss`; its /.well-known/openid-configuration is read',
  })
  @IsString()
  @MaxLength(512)
  issuer!: string;

  @ApiProperty({
    type: [String],
    example: ['https://signet.example.com'],
    description: 'Accepted `aud` values (the audience CI jobs request their ID token for)',
  })
  @IsArray()
  @ArrayMaxSize(16)
  @IsString({ each: true })
  audiences!: string[];

  @ApiPropertyOptional({
    type: [String],
    enum: ASYMMETRIC_ALGORITHMS,
    default: ['RS256', 'ES256'],
    description: '`none` and HMAC algorithms are never accepted',
  })
  @IsOptional()
  @IsArray()
  @ArrayMaxSize(16)
  @IsString({ each: true })
  allowedAlgorithms?: string[];

  @ApiPropertyOptional({ description: "Overrides the discovery document's jwks_uri" })
  @IsOptional()
  @IsString()
  @MaxLength(512)
  jwksUri?: string;

  @ApiPropertyOptional({ default: 60, minimum: 0, maximum: 300, description: 'Leeway for exp, nbf and iat' })
  @IsOptional()
  @IsInt()
  @Min(0)
  @Max(300)
  clockSkewSeconds?: number;

  @ApiPropertyOptional({ default: false, description: 'Refuse a second use of a token (its jti), across replicas' })
  @IsOptional()
  @IsBoolean()
  singleUse?: boolean;
}

/** Absent fields stay as they are; `jwksUri: null` goes back to the discovery document's. */
export class UpdateIdentityProviderDto {
  @ApiPropertyOptional()
  @IsOptional()
  @IsString()
  @MaxLength(512)
  issuer?: string;

  @ApiPropertyOptional({ type: [String] })
  @IsOptional()
  @IsArray()
  @ArrayMaxSize(16)
  @IsString({ each: true })
  audiences?: string[];

  @ApiPropertyOptional({ type: [String], enum: ASYMMETRIC_ALGORITHMS })
  @IsOptional()
  @IsArray()
  @ArrayMaxSize(16)
  @IsString({ each: true })
  allowedAlgorithms?: string[];

  @ApiPropertyOptional({ nullable: true })
  @IsOptional()
  @IsString()
  @MaxLength(512)
  jwksUri?: string | null;

  @ApiPropertyOptional({ minimum: 0, maximum: 300 })
  @IsOptional()
  @IsInt()
  @Min(0)
  @Max(300)
  clockSkewSeconds?: number;

  @ApiPropertyOptional()
  @IsOptional()
  @IsBoolean()
  singleUse?: boolean;
}

const CLAIMS_DESCRIPTION =
  'Claim name → exact string, or a glob where * stands for any run of characters. Every listed claim must match, as a string.';

export class CreateWorkloadRuleDto {
  @ApiProperty({ example: 'acme-app-release' })
  @IsString()
  @MaxLength(100)
  name!: string;

  @ApiProperty({ example: 'github-actions', description: 'An identity provider name' })
  @IsString()
  @MaxLength(100)
  provider!: string;

  @ApiProperty({
    type: 'object',
    additionalProperties: { type: 'string' },
    example: { repository: 'acme/app', ref: 'refs/heads/main', environment: 'prod' },
    description: CLAIMS_DESCRIPTION,
  })
  @IsObject()
  claims!: Record<string, string>;

  @ApiProperty({
    type: [String],
    example: ['release'],
    description: 'Keys on which matching tokens get the signer role',
  })
  @IsArray()
  @ArrayMaxSize(1000)
  @IsString({ each: true })
  keys!: string[];

  @ApiPropertyOptional({ nullable: true, example: '2027-01-01T00:00:00Z' })
  @IsOptional()
  @IsString()
  expiresAt?: string | null;
}

export class UpdateWorkloadRuleDto {
  @ApiPropertyOptional({ type: 'object', additionalProperties: { type: 'string' }, description: CLAIMS_DESCRIPTION })
  @IsOptional()
  @IsObject()
  claims?: Record<string, string>;

  @ApiPropertyOptional({ type: [String] })
  @IsOptional()
  @IsArray()
  @ArrayMaxSize(1000)
  @IsString({ each: true })
  keys?: string[];

  @ApiPropertyOptional({ nullable: true, description: 'ISO 8601, or null for never' })
  @IsOptional()
  @IsString()
  expiresAt?: string | null;
}
