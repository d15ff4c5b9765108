import { ApiProperty, ApiPropertyOptional } from '@nestjs/swagger';
import { ArrayMaxSize, IsArray, IsIn, IsInt, IsOptional, IsString, Matches, Max, Min } from 'class-validator';
import { Role, ROLES } from '../../common/roles';

export const TOKEN_NAME = /^[A-Za-z0-9][A-Za-z0-9._@-]{0,99}$/;
export const KEY_NAME = /^[A-Za-z0-9][A-Za-z0-9._-]{0,199}$/;

export class CreateTokenDto {
  @ApiProperty({ example: 'ci-release', description: 'Unique among active tokens' })
  @IsString()
  @Matches(TOKEN_NAME, {
    message: 'name must be 1-100 letters, digits, ".", "_", "@" or "-", starting with a letter or digit',
  })
  name!: string;

  @ApiProperty({ enum: ROLES })
  @IsIn(ROLES as unknown as string[])
  role!: Role;

  @ApiPropertyOptional({ type: [String], description: 'Keys a signer may use (signer tokens only)' })
  @IsOptional()
  @IsArray()
  @ArrayMaxSize(1000)
  @IsString({ each: true })
  @Matches(KEY_NAME, { each: true, message: 'each key must be a key name' })
  keys?: string[];

  @ApiPropertyOptional({ minimum: 1, maximum: 3650, description: 'Expire after this many days (default: never)' })
  @IsOptional()
  @IsInt()
  @Min(1)
  @Max(3650)
  expiresInDays?: number;

  @ApiPropertyOptional({
    minimum: 1,
    description: 'Requests per second for this token (default: SIGNET_RATE_LIMIT_PER_SECOND)',
  })
  @IsOptional()
  @IsInt()
  @Min(1)
  @Max(1_000_000)
  rateLimitPerSecond?: number;
}
