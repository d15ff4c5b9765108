import { ApiProperty, ApiPropertyOptional } from '@nestjs/swagger';
import { ArrayMaxSize, IsArray, IsObject, IsOptional, IsString } from 'class-validator';

export class TrustPolicySettingsDto {
  registryScopes?: string[];
  level?: 'strict' | 'permissive' | 'audit';
}

export class CreateTruststoreDto {
  @ApiProperty({ example: 'production', description: 'DNS label; also the Notation trust store name' })
  @IsString()
  name!: string;

  @ApiProperty({ type: [String], example: ['prod-root'], description: 'root CA names; every usable key generation of each is included' })
  @IsArray()
  @ArrayMaxSize(32)
  @IsString({ each: true })
  cas!: string[];

  @ApiPropertyOptional({ example: { registryScopes: ['registry.example.com/app'], level: 'strict' }, description: 'Notation trust policy settings (default: all scopes, strict)' })
  @IsOptional()
  @IsObject()
  trustPolicy?: TrustPolicySettingsDto;
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
}
