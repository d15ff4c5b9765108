import * as crypto from 'node:crypto';
import * as http from 'node:http';
import * as https from 'node:https';
import * as net from 'node:net';
import { HASH_LENGTH, KEY_SPEC_INFO, nodeHashName } from '../../../src/pki/key-spec';
import { IssuedKey } from './openssl-pki';

/**
 * A TEST DOUBLE of Signet's `GET /v1/keys/{name}` and `POST /v1/keys/{name}/sign` (API.md), on
 * 127.0.0.1. It really signs, with Node crypto keys whose certificate chains OpenSSL issued, and
 * answers errors in Signet's shape. The real signing endpoint is being built alongside this plugin;
 * an end-to-end test of the plugin against the real server comes with that API.
 */
export interface RecordedRequest {
  method: string;
  path: string;
  authorization?: string;
  body?: Record<string, unknown>;
}

export interface ScriptedAnswer {
  status: number;
  body?: unknown;
  headers?: Record<string, string>;
}

/** Replaces the normal answer; `'hang'` accepts the request and never answers. */
export type Override = (request: RecordedRequest) => ScriptedAnswer | 'hang' | undefined;

export class SignetDouble {
  readonly requests: RecordedRequest[] = [];
  /** Artifacts recorded from payload-mode signings (Signet reads targetArtifact from the JWS). */
  readonly signedArtifacts: unknown[] = [];
  override?: Override;
  url = '';
  private server?: http.Server;
  private readonly sockets = new Set<net.Socket>();

  constructor(
    private readonly keys: Map<string, IssuedKey>,
    private readonly token: string,
    private readonly tls?: { key: string; cert: string },
  ) {}

  async start(): Promise<string> {
    const handler = (req: http.IncomingMessage, res: http.ServerResponse) => void this.handle(req, res);
    this.server = this.tls
      ? https.createServer({ key: this.tls.key, cert: this.tls.cert }, handler)
      : http.createServer(handler);
    this.server.on('connection', (socket: net.Socket) => {
      this.sockets.add(socket);
      socket.on('close', () => this.sockets.delete(socket));
    });
    await new Promise<void>((resolve) => this.server!.listen(0, '127.0.0.1', resolve));
    const { port } = this.server.address() as net.AddressInfo;
    this.url = `${this.tls ? 'https' : 'http'}://127.0.0.1:${port}`;
    return this.url;
  }

  async stop(): Promise<void> {
    for (const socket of this.sockets) socket.destroy();
    await new Promise<void>((resolve) => this.server?.close(() => resolve()) ?? resolve());
  }

  reset(): void {
    this.requests.length = 0;
    this.signedArtifacts.length = 0;
    this.override = undefined;
  }

  private async handle(req: http.IncomingMessage, res: http.ServerResponse): Promise<void> {
    const chunks: Buffer[] = [];
    for await (const chunk of req) chunks.push(chunk as Buffer);
    const text = Buffer.concat(chunks).toString('utf8');
    const recorded: RecordedRequest = {
      method: req.method ?? '',
      path: req.url ?? '',
      authorization: req.headers.authorization,
    };
    if (text !== '') {
      try {
        recorded.body = JSON.parse(text) as Record<string, unknown>;
      } catch {
        return send(res, 400, signetError('BAD_REQUEST', 'body is not JSON'));
      }
    }
    this.requests.push(recorded);

    const scripted = this.override?.(recorded);
    if (scripted === 'hang') return; // the socket stays open until stop()
    if (scripted) return send(res, scripted.status, scripted.body, scripted.headers);

    if (req.headers.authorization !== `Bearer ${this.token}`) {
      return send(res, 401, signetError('UNAUTHENTICATED', 'missing or invalid bearer token'));
    }
    const match = /^\/v1\/keys\/([^/]+)(\/sign)?$/.exec(recorded.path);
    const key = match ? this.keys.get(decodeURIComponent(match[1])) : undefined;
    if (!match || (match[2] ? req.method !== 'POST' : req.method !== 'GET')) {
      return send(res, 404, signetError('ROUTE_NOT_FOUND', `no route ${req.method} ${recorded.path}`));
    }
    // A key that does not exist and one not granted to this token look the same (API.md).
    if (!key) return send(res, 404, signetError('NOT_FOUND', `key '${decodeURIComponent(match[1])}' not found`));
    const info = KEY_SPEC_INFO[key.spec];
    if (!match[2]) {
      return send(res, 200, {
        name: decodeURIComponent(match[1]),
        keySpec: key.spec,
        versions: [{ version: 1, state: 'active' }],
      });
    }

    const body = recorded.body ?? {};
    const unknown = Object.keys(body).filter(
      (field) => !['payload', 'hashAlgorithm', 'signatureFormat'].includes(field),
    );
    if (unknown.length > 0)
      return send(res, 400, signetError('VALIDATION_ERROR', `unknown field(s): ${unknown.join(', ')}`));
    if (body.hashAlgorithm !== info.hash) {
      return send(
        res,
        400,
        signetError(
          'UNSUPPORTED_ALGORITHM',
          `key ${key.spec} signs with ${info.hash}, not ${String(body.hashAlgorithm)}`,
        ),
      );
    }
    if (body.signatureFormat !== 'raw')
      return send(res, 400, signetError('VALIDATION_ERROR', 'signatureFormat must be raw'));
    const payload = Buffer.from(String(body.payload ?? ''), 'base64');
    if (payload.length === 0) return send(res, 400, signetError('INVALID_BASE64', 'payload is empty or not base64'));
    if (payload.length > 64 * 1024) return send(res, 413, signetError('PAYLOAD_TOO_LARGE', 'payload exceeds 64 KiB'));

    this.signedArtifacts.push(targetArtifact(payload));
    const signature =
      info.kind === 'EC'
        ? crypto.sign(nodeHashName(info.hash), payload, { key: key.privateKey, dsaEncoding: 'ieee-p1363' })
        : crypto.sign(nodeHashName(info.hash), payload, {
            key: key.privateKey,
            padding: crypto.constants.RSA_PKCS1_PSS_PADDING,
            saltLength: HASH_LENGTH[info.hash],
          });
    return send(res, 200, {
      keyName: decodeURIComponent(match[1]),
      keyVersion: 1,
      keySpec: key.spec,
      signingAlgorithm: info.signingAlgorithm,
      signature: signature.toString('base64'),
      certificateChain: key.chain.map((der) => der.toString('base64')),
    });
  }
}

export function signetError(code: string, message: string): { error: { code: string; message: string } } {
  return { error: { code, message } };
}

function send(res: http.ServerResponse, status: number, body: unknown, headers: Record<string, string> = {}): void {
  const text = body === undefined ? '' : JSON.stringify(body);
  res.writeHead(status, { 'content-type': 'application/json', ...headers });
  res.end(text);
}

/** What Signet records from a Notary JWS signing input: the payload's targetArtifact. */
function targetArtifact(signingInput: Buffer): unknown {
  const parts = signingInput.toString('latin1').split('.');
  if (parts.length !== 2) return undefined;
  try {
    return (JSON.parse(Buffer.from(parts[1], 'base64url').toString('utf8')) as { targetArtifact?: unknown })
      .targetArtifact;
  } catch {
    return undefined;
  }
}
