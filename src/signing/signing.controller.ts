import { Body, Controller, Header, HttpCode, Param, Post } from '@nestjs/common';
import { ApiBearerAuth, ApiBody, ApiOkResponse, ApiTags } from '@nestjs/swagger';
import { Roles } from '../common/access.decorators';
import { Principal } from '../auth/principal';
import { MAX_PAYLOAD_BYTES } from './sign-request';
import { SigningService } from './signing.service';

const ARTIFACT_SCHEMA = {
  type: 'object',
  additionalProperties: false,
  required: ['digest'],
  properties: {
    digest: { type: 'string', pattern: '^(sha256:[0-9a-f]{64}|sha384:[0-9a-f]{96}|sha512:[0-9a-f]{128})$' },
    mediaType: { type: 'string', example: 'application/vnd.oci.image.manifest.v1+json' },
    size: { type: 'integer', minimum: 0 },
  },
};

@ApiTags('signing')
@ApiBearerAuth()
@Controller('v1/keys')
export class SigningController {
  constructor(private readonly signing: SigningService) {}

  /** Body checked by hand in the service (sign-request.ts): this route is the hot path. */
  @Post(':name/sign')
  @HttpCode(200)
  @Roles('admin', 'signer')
  @Header('content-type', 'application/json; charset=utf-8')
  @ApiBody({
    description:
      `Exactly one of digest (computed by the client) or payload (bytes Signet hashes, ≤ ${MAX_PAYLOAD_BYTES} bytes; the targetArtifact of a Notary JWS ` +
      'signing input or COSE Sig_structure is recorded, read as Go reads it; ambiguous payloads → 400 AMBIGUOUS_PAYLOAD). A key with requires signs ' +
      'payloads only (digest → 400 PAYLOAD_REQUIRED); a client-sent artifact is recorded as claimed and never satisfies promotion. ' +
      'hashAlgorithm must be the one the key spec pairs with. signatureFormat der is ECDSA only. No other fields.',
    schema: {
      type: 'object',
      additionalProperties: false,
      required: ['hashAlgorithm'],
      properties: {
        digest: { type: 'string', format: 'byte' },
        payload: { type: 'string', format: 'byte' },
        hashAlgorithm: { type: 'string', enum: ['SHA-256', 'SHA-384', 'SHA-512'] },
        artifact: ARTIFACT_SCHEMA,
        signatureFormat: { type: 'string', enum: ['raw', 'der'], default: 'raw' },
        idempotencyKey: {
          type: 'string',
          minLength: 1,
          maxLength: 255,
          description:
            'A repeat within SIGNET_SIGN_IDEMPOTENCY_WINDOW_SECONDS returns the first answer, unless the version that signed it may no longer sign (rotated, revoked): then 409 VERSION_CANNOT_SIGN.',
        },
      },
    },
  })
  @ApiOkResponse({
    schema: {
      type: 'object',
      properties: {
        keyName: { type: 'string' },
        keyVersion: { type: 'integer' },
        keySpec: { type: 'string' },
        signingAlgorithm: { type: 'string', example: 'ECDSA-SHA-256' },
        signature: { type: 'string', format: 'byte' },
        certificateChain: {
          type: 'array',
          items: { type: 'string', format: 'byte' },
          description: 'DER, leaf first, root last',
        },
        artifact: ARTIFACT_SCHEMA,
      },
    },
  })
  sign(@Param('name') name: string, @Body() body: unknown, @Principal() principal: Principal): Promise<string> {
    principal.assertCanUseKey(name);
    return this.signing.sign(name, body, principal);
  }
}
