// Stylesheets are bundled by esbuild (src/console/build.ts); importing one has no value.
declare module '*.css';
