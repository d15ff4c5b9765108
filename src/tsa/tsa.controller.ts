import { Body, Controller, Header, HttpCode, Post, Req } from '@nestjs/common';
import { ApiBody, ApiConsumes, ApiOkResponse, ApiOperation, ApiProduces, ApiTags } from '@nestjs/swagger';
import type { FastifyRequest } from 'fastify';
import { Public } from '../common/access.decorators';
import { TsaService } from './tsa.service';

export const TIMESTAMP_QUERY_TYPE = 'application/timestamp-query';
export const TIMESTAMP_REPLY_TYPE = 'application/timestamp-reply';

/** RFC 3161 over HTTP (§3.4): one DER TimeStampReq in, one DER TimeStampResp out. Public, like /pki. */
@ApiTags('timestamps')
@Controller('tsa')
export class TsaController {
  constructor(private readonly tsa: TsaService) {}

  @Public()
  @Post()
  @HttpCode(200)
  @Header('Content-Type', TIMESTAMP_REPLY_TYPE)
  @Header('Cache-Control', 'no-store')
  @ApiOperation({
    summary: 'RFC 3161 time-stamp',
    description:
      'A malformed or unacceptable query is answered 200 with a TimeStampResp of status rejection and a failure info; ' +
      'only service failures (database, HSM, audit, no TSA configured) get a 503 in the JSON error shape.',
  })
  @ApiConsumes(TIMESTAMP_QUERY_TYPE)
  @ApiProduces(TIMESTAMP_REPLY_TYPE)
  @ApiBody({ description: 'DER TimeStampReq', schema: { type: 'string', format: 'binary' } })
  @ApiOkResponse({
    description: 'DER TimeStampResp (granted or rejection)',
    schema: { type: 'string', format: 'binary' },
  })
  async timestamp(@Body() query: unknown, @Req() request: FastifyRequest): Promise<Buffer> {
    const reply = await this.tsa.respond(Buffer.isBuffer(query) ? query : undefined, request.ip);
    return reply.der;
  }
}
