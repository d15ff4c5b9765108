import { ApiProperty } from '@nestjs/swagger';
import { IsString, MaxLength } from 'class-validator';

export class CreateSessionDto {
  @ApiProperty({
    description:
      'An API token (sgt_…) of the admin, security-officer or auditor role; exchanged once, never stored by the page',
  })
  @IsString()
  @MaxLength(200)
  token!: string;
}
