import { Body, Controller, Get, Header, HttpCode, Param, Post, Req, Res } from '@nestjs/common';
import { ApiExcludeController } from '@nestjs/swagger';
import type { FastifyReply, FastifyRequest } from 'fastify';
import { Public } from '../common/access.decorators';
import { CaService } from '../ca/ca.service';
import { decodeOcspGetRequest, ocspErrorResponse, ocspResponseForError } from '../pki';
import { DomainError, ErrorCode } from '../common/errors';
import { ClientRateLimiter } from '../observability/client-rate-limiter';
import { CrlService } from './crl.service';
import { OcspService } from './ocsp.service';

/**
 * What verifiers fetch, over plain HTTP and without authentication: CA certificates
 * (`/pki/{generation}.crt`), CRLs (`/pki/{generation}.crl`) and OCSP (`/ocsp/{generation}`).
 */
@ApiExcludeController()
@Controller()
export class PkiController {
  constructor(
    private readonly cas: CaService,
    private readonly crls: CrlService,
    private readonly ocsp: OcspService,
    private readonly limiter: ClientRateLimiter,
  ) {}

  /** 429 for /pki; OCSP clients get the protocol's own tryLater instead (see callers). */
  private limited(request: FastifyRequest): number {
    return this.limiter.take(request.ip);
  }

  @Get('pki/:file')
  @Public()
  async file(@Param('file') file: string, @Req() request: FastifyRequest, @Res() reply: FastifyReply): Promise<void> {
    const wait = this.limited(request);
    if (wait > 0)
      throw new DomainError(ErrorCode.RATE_LIMITED, 'too many requests from this address', { retryAfterSeconds: wait });
    const match = /^([A-Za-z0-9][A-Za-z0-9._-]{0,127})\.(crt|crl)$/.exec(file);
    if (!match) throw new DomainError(ErrorCode.NOT_FOUND, `no such file ${file}`);
    const [, generationName, kind] = match;
    if (kind === 'crt') {
      const generation = await this.cas.generationByName(generationName);
      if (!generation.certificate)
        throw new DomainError(ErrorCode.NOT_FOUND, `CA key generation ${generationName} has no certificate yet`);
      await reply
        .header('content-type', 'application/pkix-cert')
        .header('cache-control', 'public, max-age=3600')
        .send(generation.certificate);
      return;
    }
    const crl = await this.crls.current(generationName);
    await reply.header('content-type', 'application/pkix-crl').header('cache-control', 'public, max-age=60').send(crl);
  }

  @Post('ocsp/:ca')
  @Public()
  @HttpCode(200)
  @Header('content-type', 'application/ocsp-response')
  @Header('cache-control', 'no-store')
  async ocspPost(@Param('ca') ca: string, @Body() body: unknown, @Req() request: FastifyRequest): Promise<Buffer> {
    if (this.limited(request) > 0) return ocspErrorResponse('tryLater');
    // Another content type, or no body: the client's mistake (malformedRequest), not ours (internalError).
    if (!Buffer.isBuffer(body)) return ocspErrorResponse('malformedRequest');
    return this.ocsp.respond(ca, body);
  }

  @Get('ocsp/:ca/*')
  @Public()
  async ocspGet(@Param('ca') ca: string, @Req() request: FastifyRequest, @Res() reply: FastifyReply): Promise<void> {
    if (this.limited(request) > 0) {
      await reply.header('content-type', 'application/ocsp-response').send(ocspErrorResponse('tryLater'));
      return;
    }
    // The base64 request may contain '/', so it is everything after /ocsp/{ca}/ in the raw URL.
    const prefix = `/ocsp/${ca}/`;
    const rawPath = request.url.split('?')[0];
    const encoded = rawPath.startsWith(prefix) ? rawPath.slice(prefix.length) : '';
    let der: Buffer;
    try {
      der = decodeOcspGetRequest(encoded);
    } catch (error) {
      await reply.header('content-type', 'application/ocsp-response').send(ocspResponseForError(error));
      return;
    }
    await reply
      .header('content-type', 'application/ocsp-response')
      .header('cache-control', 'public, max-age=60')
      .send(await this.ocsp.respond(ca, der));
  }
}
