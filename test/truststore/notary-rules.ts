import { execFileSync, spawnSync } from 'node:child_process';
import { X509Certificate } from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';

/**
 * NOTARY.md's trust store and trust policy rules, checked from the outside on an unpacked
 * directory: the file system as `tar` wrote it, certificates as OpenSSL reads them. Independent of
 * the validator Signet runs on its own output (src/truststore/trust-policy.ts).
 */
export function unpackTar(tarball: Buffer, dir: string): void {
  const file = path.join(dir, '..', `${path.basename(dir)}.tar`);
  fs.writeFileSync(file, tarball);
  fs.mkdirSync(dir, { recursive: true });
  execFileSync('tar', ['-xf', file, '-C', dir, '--no-same-owner']);
}

/** Every rule the layout breaks; empty when it passes. */
export function notationLayoutProblems(dir: string): string[] {
  const problems: string[] = [];
  const walk = (relative: string): void => {
    for (const entry of fs.readdirSync(path.join(dir, relative), { withFileTypes: true })) {
      const rel = path.posix.join(relative, entry.name);
      if (entry.isSymbolicLink()) problems.push(`${rel}: symlink`);
      else if (entry.isDirectory()) walk(rel);
      else if (!entry.isFile()) problems.push(`${rel}: not a regular file`);
      else checkFile(rel);
    }
  };
  const checkFile = (rel: string): void => {
    if (rel === 'trustpolicy.oci.json' || rel === 'trustpolicy.json') return;
    const parts = rel.split('/');
    // {config}/truststore/x509/{ca|signingAuthority|tsa}/{store}/{file}: exactly this depth
    if (
      parts.length !== 5 ||
      parts[0] !== 'truststore' ||
      parts[1] !== 'x509' ||
      !['ca', 'signingAuthority', 'tsa'].includes(parts[2])
    ) {
      problems.push(
        `${rel}: outside truststore/x509/{ca,signingAuthority,tsa}/<store>/<file> (sub-directories are not allowed)`,
      );
      return;
    }
    if (!/^[a-zA-Z0-9_.-]+$/.test(parts[3]))
      problems.push(`${rel}: store name ${parts[3]} does not match ^[a-zA-Z0-9_.-]+$`);
    const text = fs.readFileSync(path.join(dir, rel), 'latin1');
    const blocks = [...text.matchAll(/-----BEGIN ([A-Z0-9 ]+)-----/g)].map((m) => m[1]);
    if (blocks.length === 0) problems.push(`${rel}: no PEM certificate`);
    for (const label of blocks)
      if (label !== 'CERTIFICATE') problems.push(`${rel}: holds a ${label} block (only certificates are allowed)`);
    for (const block of text.match(/-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/g) ?? []) {
      const certificate = new X509Certificate(block);
      const selfSigned = certificate.checkIssued(certificate) && certificate.verify(certificate.publicKey);
      const out = spawnSync('openssl', ['x509', '-noout', '-text'], { input: block, encoding: 'utf8' }).stdout;
      const isCa = /CA:TRUE/.test(out);
      if (!isCa && !selfSigned)
        problems.push(`${rel}: ${certificate.subject.replace(/\n/g, ', ')} is neither a CA nor self-signed`);
      if (parts[2] === 'tsa' && !selfSigned)
        problems.push(`${rel}: a tsa store certificate must be a self-signed root`);
      if (/sha1With/i.test(out)) problems.push(`${rel}: SHA-1 signature`);
    }
  };
  walk('');
  return problems;
}

/** NOTARY.md trust policy rules, restated independently for the tests. */
export function trustPolicyRuleProblems(policy: Record<string, unknown>, storesOnDisk: string[]): string[] {
  const problems: string[] = [];
  if (policy.version !== '1.0') problems.push('version');
  const policies = policy.trustPolicies as Array<Record<string, unknown>>;
  if (!Array.isArray(policies) || policies.length === 0) return [...problems, 'trustPolicies'];
  const names = policies.map((p) => p.name);
  if (new Set(names).size !== names.length || names.some((n) => typeof n !== 'string' || !n))
    problems.push('names must be unique and non-empty');
  const scopes = policies.flatMap((p) => p.registryScopes as string[]);
  if (new Set(scopes).size !== scopes.length) problems.push('a scope appears in more than one policy');
  for (const p of policies) {
    const own = p.registryScopes as string[];
    if (own.includes('*') && own.length > 1) problems.push('"*" must stand alone');
    const level = (p.signatureVerification as { level?: string })?.level;
    if (!['strict', 'permissive', 'audit', 'skip'].includes(level ?? '')) problems.push(`level ${level}`);
    const stores = (p.trustStores as string[] | undefined) ?? [];
    const identities = (p.trustedIdentities as string[] | undefined) ?? [];
    if (level === 'skip') {
      if (stores.length || identities.length) problems.push('skip takes no stores or identities');
      continue;
    }
    if (!stores.length || !identities.length) problems.push('stores and identities are required');
    for (const store of stores) {
      if (!/^(ca|signingAuthority|tsa):[a-zA-Z0-9_.-]+$/.test(store)) problems.push(`store ${store}`);
      else if (!storesOnDisk.includes(store.replace(':', '/'))) problems.push(`store ${store} is not in the layout`);
    }
    for (const identity of identities) {
      if (identity === '*') continue;
      const dn = identity.replace(/^x509\.subject:\s*/, '');
      if (dn === identity) problems.push(`identity ${identity} lacks x509.subject:`);
      for (const attribute of ['C', 'ST', 'O'])
        if (dn.split(/,\s*/).filter((part) => part.startsWith(`${attribute}=`)).length !== 1)
          problems.push(`identity ${identity} needs one ${attribute}`);
    }
  }
  return problems;
}

/** `ca/<store>` and `tsa/<store>` directories present in an unpacked layout. */
export function storesIn(dir: string): string[] {
  const base = path.join(dir, 'truststore', 'x509');
  if (!fs.existsSync(base)) return [];
  return fs
    .readdirSync(base)
    .flatMap((type) => fs.readdirSync(path.join(base, type)).map((store) => `${type}/${store}`));
}
