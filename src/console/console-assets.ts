import * as fs from 'node:fs';
import * as path from 'node:path';
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { DomainError, ErrorCode } from '../common/errors';

/**
 * The security console's static files (README "Security console"), built by `npm run build` into
 * dist/console (src/console/build.ts): index.html, hashed bundles under assets/, and a .br and .gz
 * beside each. Read into memory once at start (a few hundred KiB): only files that exist there can
 * be named, so no request path reaches the file system. Served at /console with the console's own
 * CSP (src/observability/security-headers.ts); any /console/... path without a file extension is a
 * page of the single-page app and gets index.html.
 */
interface Asset {
  type: string;
  /** Hashed bundle names never change content: cached for a year. index.html never. */
  immutable: boolean;
  identity: Buffer;
  br?: Buffer;
  gzip?: Buffer;
}

const TYPES: Readonly<Record<string, string>> = {
  '.html': 'text/html; charset=utf-8',
  '.js': 'text/javascript; charset=utf-8',
  '.mjs': 'text/javascript; charset=utf-8',
  '.css': 'text/css; charset=utf-8',
  '.json': 'application/json; charset=utf-8',
  '.svg': 'image/svg+xml',
  '.png': 'image/png',
  '.ico': 'image/x-icon',
  '.woff2': 'font/woff2',
  '.txt': 'text/plain; charset=utf-8',
};
/** Bundle names as the build writes them: name-HASH.ext. */
const HASHED = /-[A-Za-z0-9_-]{8,}\.[a-z0-9]+$/;

/** Where `npm run build` puts the console: dist/console beside dist/src (compiled) or under the project root (ts-node/jest). */
export function defaultConsoleDir(): string {
  const compiled = path.extname(__filename) === '.js';
  return compiled
    ? path.resolve(__dirname, '..', '..', 'console')
    : path.resolve(__dirname, '..', '..', 'dist', 'console');
}

/** Every servable file under `dir`, by its path relative to it ('index.html', 'assets/main-AB12CD34.js'). */
export function loadConsoleAssets(dir: string): Map<string, Asset> {
  const assets = new Map<string, Asset>();
  if (!fs.existsSync(dir)) return assets;
  const walk = (folder: string): void => {
    for (const entry of fs.readdirSync(folder, { withFileTypes: true })) {
      const file = path.join(folder, entry.name);
      if (entry.isDirectory()) walk(file);
      else if (entry.isFile() && !/\.(br|gz)$/.test(entry.name) && TYPES[path.extname(entry.name)]) {
        const relative = path.relative(dir, file).split(path.sep).join('/');
        const sibling = (suffix: string) => (fs.existsSync(file + suffix) ? fs.readFileSync(file + suffix) : undefined);
        assets.set(relative, {
          type: TYPES[path.extname(entry.name)],
          immutable: relative !== 'index.html' && HASHED.test(entry.name),
          identity: fs.readFileSync(file),
          br: sibling('.br'),
          gzip: sibling('.gz'),
        });
      }
    }
  };
  walk(dir);
  return assets;
}

/** GET /console and /console/* from the files in `dir` (read now; a rebuild needs a restart). */
export function registerConsole(fastify: FastifyInstance, dir: string): void {
  const assets = loadConsoleAssets(dir);
  const serve = async (request: FastifyRequest<{ Params: { '*'?: string } }>, reply: FastifyReply): Promise<void> => {
    const wanted = request.params['*'] ?? '';
    const asset = assets.get(wanted) ?? (isPage(wanted) ? assets.get('index.html') : undefined);
    if (!asset) {
      if (!assets.has('index.html'))
        throw new DomainError(
          ErrorCode.ROUTE_NOT_FOUND,
          'the security console is not built here (npm run build writes dist/console)',
        );
      throw new DomainError(ErrorCode.ROUTE_NOT_FOUND, `no console file ${wanted.slice(0, 200)}`);
    }
    const encoding = pickEncoding(request.headers['accept-encoding'], asset);
    void reply
      .header('content-type', asset.type)
      .header('cache-control', asset.immutable ? 'public, max-age=31536000, immutable' : 'no-store')
      .header('vary', 'accept-encoding');
    if (encoding) void reply.header('content-encoding', encoding === 'gzip' ? 'gzip' : 'br');
    await reply.send(encoding === 'br' ? asset.br : encoding === 'gzip' ? asset.gzip : asset.identity);
  };
  fastify.get('/console', serve);
  fastify.get('/console/*', serve);
}

/** A path of the app's own pages (/console/fleet, /console/revoke/01AB): no file extension in its last segment. */
function isPage(wanted: string): boolean {
  const last = wanted.split('/').pop() ?? '';
  return !last.includes('.');
}

/** br, then gzip, when the client accepts it (q=0 refuses) and the build wrote it. */
function pickEncoding(header: string | string[] | undefined, asset: Asset): 'br' | 'gzip' | undefined {
  const accepted = new Set<string>();
  for (const part of String(header ?? '').split(',')) {
    const [name, ...params] = part.trim().toLowerCase().split(';');
    const q = params.map((p) => /^\s*q=([0-9.]+)\s*$/.exec(p)?.[1]).find((v) => v !== undefined);
    if (name && (q === undefined || Number(q) > 0)) accepted.add(name);
  }
  if (asset.br && accepted.has('br')) return 'br';
  if (asset.gzip && accepted.has('gzip')) return 'gzip';
  return undefined;
}
