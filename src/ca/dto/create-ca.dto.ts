import { ApiProperty, ApiPropertyOptional } from '@nestjs/swagger';
import {
  ArrayMaxSize,
  IsArray,
  IsBoolean,
  IsIn,
  IsInt,
  IsObject,
  IsOptional,
  IsString,
  Max,
  Min,
} from 'class-validator';
import { KEY_SPECS, KeySpec } from '../../pki/key-spec';

export class CreateCaDto {
  @ApiProperty({ example: 'prod-issuing' })
  @IsString()
  name!: string;

  @ApiProperty({ enum: ['root', 'issuing'] })
  @IsIn(['root', 'issuing'])
  kind!: 'root' | 'issuing';

  @ApiPropertyOptional({ description: 'root CA name, for an issuing CA' })
  @IsOptional()
  @IsString()
  parent?: string;

  @ApiPropertyOptional({ enum: KEY_SPECS, default: 'EC-384' })
  @IsOptional()
  @IsIn(KEY_SPECS as unknown as string[])
  keySpec?: KeySpec;

  @ApiProperty({ example: { C: 'US', ST: 'WA', O: 'Example', CN: 'Example Issuing CA' } })
  @IsObject()
  subject!: Record<string, unknown>;

  @ApiPropertyOptional({
    description: 'issuing CA under an offline root: create the key and a CSR; import the chain later',
  })
  @IsOptional()
  @IsBoolean()
  external?: boolean;

  @ApiPropertyOptional({ description: 'root default 3650, issuing default 1825' })
  @IsOptional()
  @IsInt()
  @Min(1)
  @Max(36500)
  validityDays?: number;
}

export class ImportCaChainDto {
  @ApiProperty({ type: [String], description: 'PEM certificates: this issuing CA first, the offline root last' })
  @IsArray()
  @ArrayMaxSize(8)
  @IsString({ each: true })
  chain!: string[];
}
