import { ApiPropertyOptional } from '@nestjs/swagger';
import { ArrayMaxSize, IsArray, IsInt, IsISO8601, IsOptional, IsString, Matches, Max, Min } from 'class-validator';
import { KEY_NAME } from './create-token.dto';

/**
 * Absent fields stay as they are; `null` clears expiresAt / rateLimitPerSecond. The role cannot be
 * changed (400). A change that would leave no admin token usable for another hour is 409 CONFLICT.
 */
export class UpdateTokenDto {
  @ApiPropertyOptional({ type: [String], description: "Replaces the signer's key grants" })
  @IsOptional()
  @IsArray()
  @ArrayMaxSize(1000)
  @IsString({ each: true })
  @Matches(KEY_NAME, { each: true, message: 'each key must be a key name' })
  keys?: string[];

  @ApiPropertyOptional({ minimum: 1, maximum: 3650, description: 'Expire this many days from now' })
  @IsOptional()
  @IsInt()
  @Min(1)
  @Max(3650)
  expiresInDays?: number;

  @ApiPropertyOptional({
    nullable: true,
    description:
      'Expiry as an ISO 8601 date, or null for never. On the last usable admin token, an expiry less than an hour away is refused (409).',
  })
  @IsOptional()
  @IsISO8601({ strict: true })
  expiresAt?: string | null;

  @ApiPropertyOptional({
    nullable: true,
    minimum: 1,
    description: 'Requests per second for this token, or null for the default',
  })
  @IsOptional()
  @IsInt()
  @Min(1)
  @Max(1_000_000)
  rateLimitPerSecond?: number | null;
}
