import * as net from 'node:net';
import * as tls from 'node:tls';
import { ServerProcess } from '../support/server-process';
import { httpsGet, startTlsServer } from '../support/tls-server';

/**
 * Slowloris, trickled or missing bodies and half-open sockets against a real server process, on
 * the TLS API listener and on the plain-HTTP public listener (/pki, /ocsp). The server runs with
 * 1 s header and 2 s request timeouts; each hostile connection must be closed well before
 * CLOSE_BOUND_MS (Node's defaults — 60 s headers, 30 s checks — would keep them open far longer),
 * and normal requests must still be served while many of them are open.
 */
const HEADERS_TIMEOUT_MS = 1000;
const REQUEST_TIMEOUT_MS = 2000;
/** Generous: the configured timeouts plus Node's check interval are a few seconds at most. */
const CLOSE_BOUND_MS = 12_000;
const TRICKLE_EVERY_MS = 150;

type Listener = 'api (TLS)' | 'public (HTTP)';

/** A raw client socket; `closed` resolves with what the server sent before closing, or `undefined` if still open at the bound. */
class Client {
  readonly closed: Promise<string | undefined>;
  private received = '';
  private timer?: NodeJS.Timeout;

  constructor(readonly socket: net.Socket) {
    socket.setEncoding('utf8');
    socket.on('data', (chunk: string) => (this.received += chunk));
    socket.on('error', () => undefined);
    this.closed = new Promise((resolve) => {
      const bound = setTimeout(() => resolve(undefined), CLOSE_BOUND_MS);
      socket.once('close', () => {
        clearTimeout(bound);
        clearInterval(this.timer);
        resolve(this.received);
      });
    });
  }

  /** Writes `text` one character every TRICKLE_EVERY_MS, then keeps writing `filler` the same way. */
  trickle(text: string, filler: string): void {
    let index = 0;
    this.timer = setInterval(() => {
      if (!this.socket.destroyed) this.socket.write(index < text.length ? text[index] : filler);
      index++;
    }, TRICKLE_EVERY_MS);
  }

  stop(): void {
    clearInterval(this.timer);
    this.socket.destroy();
  }
}

describe('slow and half-open connections are cut off by the header, request and handshake timeouts (real server process)', () => {
  let server: ServerProcess;
  let cert: Buffer;
  let publicPort: number;
  let caGeneration: string;
  const clients: Client[] = [];

  async function connect(listener: Listener, handshake = true): Promise<Client> {
    const client = new Client(
      listener === 'public (HTTP)'
        ? net.connect(publicPort, '127.0.0.1')
        : handshake
          ? tls.connect({ host: '127.0.0.1', port: server.port, ca: cert })
          : net.connect(server.port, '127.0.0.1'),
    );
    clients.push(client);
    await new Promise<void>((resolve, reject) => {
      client.socket.once(listener === 'api (TLS)' && handshake ? 'secureConnect' : 'connect', () => resolve());
      client.socket.once('error', reject);
    });
    return client;
  }

  function headersFor(listener: Listener, body: 'none' | 'pending'): string {
    const target = listener === 'api (TLS)' ? 'POST /v1/keys' : `POST /ocsp/${caGeneration}`;
    const type = listener === 'api (TLS)' ? 'application/json' : 'application/ocsp-request';
    return body === 'none'
      ? `GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n`
      : `${target} HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer sgt_not_a_real_token\r\nContent-Type: ${type}\r\nContent-Length: 4000\r\n\r\n`;
  }

  const status = async (url: string) => (await httpsGet(url, cert)).status;

  beforeAll(async () => {
    ({ server, cert, publicPort } = await startTlsServer('slow', {
      SIGNET_HTTP_HEADERS_TIMEOUT_MS: String(HEADERS_TIMEOUT_MS),
      SIGNET_HTTP_REQUEST_TIMEOUT_MS: String(REQUEST_TIMEOUT_MS),
      // The hostile connections all come from 127.0.0.1, like the normal requests.
      SIGNET_PUBLIC_RATE_LIMIT_PER_SECOND: '100000',
    }));
    const deadline = Date.now() + 120_000;
    while ((await status(`https://127.0.0.1:${server.port}/readyz`).catch(() => 0)) !== 200) {
      if (Date.now() > deadline) throw new Error(`server not ready:\n${server.text().slice(-3000)}`);
      await new Promise((r) => setTimeout(r, 300));
    }
    caGeneration = /"(signet-dev-issuing-g\d+)"/.exec(server.text())?.[1] ?? 'signet-dev-issuing-g1';
  });
  afterEach(() => {
    for (const client of clients.splice(0)) client.stop();
  });
  afterAll(async () => {
    server.kill('SIGTERM');
    await server.exited;
  });

  it.each<Listener>(['api (TLS)', 'public (HTTP)'])(
    'closes a slowloris client on the %s listener that trickles header lines',
    async (listener) => {
      const client = await connect(listener);
      client.trickle(headersFor(listener, 'none'), 'X');
      const answer = await client.closed;
      // Node answers 408 (or just closes) when it gives up on the headers; no handler ran.
      expect(answer).toBeDefined();
      expect(answer).toMatch(/^$|^HTTP\/1\.1 408 /);
    },
  );

  it.each<[Listener, 'trickles' | 'never sends']>([
    ['api (TLS)', 'trickles'],
    ['api (TLS)', 'never sends'],
    ['public (HTTP)', 'trickles'],
    ['public (HTTP)', 'never sends'],
  ])(
    'closes a client on the %s listener that sends headers with Content-Length and then %s the body',
    async (listener, body) => {
      const client = await connect(listener);
      client.socket.write(headersFor(listener, 'pending'));
      if (body === 'trickles') client.trickle('', '0');
      const answer = await client.closed;
      // Closed by the timeout (Node's 408, or no answer at all), not answered by a handler.
      expect(answer).toBeDefined();
      expect(answer).toMatch(/^$|^HTTP\/1\.1 408 /);
    },
  );

  it.each<Listener>(['api (TLS)', 'public (HTTP)'])(
    'closes a half-open client on the %s listener that connects and sends nothing',
    async (listener) => {
      const client = await connect(listener);
      expect(await client.closed).toBeDefined();
    },
  );

  it('closes a client on the TLS listener that opens TCP and never starts the TLS handshake', async () => {
    const client = await connect('api (TLS)', false);
    expect(await client.closed).toBeDefined();
  });

  it('serves normal requests on both listeners while many slow and half-open connections are open, then closes all of those', async () => {
    const hostile: Client[] = [];
    for (const listener of ['api (TLS)', 'public (HTTP)'] as Listener[]) {
      for (let i = 0; i < 15; i++) {
        const slowloris = await connect(listener);
        slowloris.trickle(headersFor(listener, 'none'), 'X');
        const bodyless = await connect(listener);
        bodyless.socket.write(headersFor(listener, 'pending'));
        hostile.push(slowloris, bodyless, await connect(listener));
      }
    }
    for (let i = 0; i < 15; i++) hostile.push(await connect('api (TLS)', false));
    expect(hostile.every((client) => !client.socket.destroyed)).toBe(true);

    // While they are all open: the API, the CA certificate, the CRL and OCSP still answer.
    expect(await status(`https://127.0.0.1:${server.port}/readyz`)).toBe(200);
    expect((await fetch(`http://127.0.0.1:${publicPort}/pki/${caGeneration}.crt`)).status).toBe(200);
    expect((await fetch(`http://127.0.0.1:${publicPort}/pki/${caGeneration}.crl`)).status).toBe(200);
    const ocsp = await fetch(`http://127.0.0.1:${publicPort}/ocsp/${caGeneration}`, {
      method: 'POST',
      headers: { 'content-type': 'application/ocsp-request' },
      body: Buffer.from([0x30, 0x00]),
    });
    expect(ocsp.status).toBe(200);
    expect(ocsp.headers.get('content-type')).toBe('application/ocsp-response');

    const answers = await Promise.all(hostile.map((client) => client.closed));
    expect(answers.filter((answer) => answer === undefined)).toHaveLength(0);
    // And the process is still the same, healthy one.
    expect(await status(`https://127.0.0.1:${server.port}/healthz`)).toBe(200);
  });
});
