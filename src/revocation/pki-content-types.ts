import { Injectable, OnModuleInit } from '@nestjs/common';
import { HttpAdapterHost } from '@nestjs/core';
import { binaryBodyFor } from '../observability/body-types';

export const OCSP_REQUEST_MAX_BYTES = 16 * 1024;

/** Fastify hands `application/ocsp-request` bodies to the OCSP route as raw Buffers (other routes refuse them). */
@Injectable()
export class PkiContentTypes implements OnModuleInit {
  constructor(private readonly adapterHost: HttpAdapterHost) {}

  onModuleInit(): void {
    const fastify = this.adapterHost.httpAdapter?.getInstance?.();
    // No HTTP server in a CLI application context.
    if (!fastify?.addContentTypeParser || fastify.hasContentTypeParser('application/ocsp-request')) return;
    fastify.addContentTypeParser(
      'application/ocsp-request',
      { parseAs: 'buffer', bodyLimit: OCSP_REQUEST_MAX_BYTES },
      binaryBodyFor('/ocsp/:ca'),
    );
  }
}
