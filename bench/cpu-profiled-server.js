/**
 * Launcher for bench/workload-identity.bench.ts's SIGNET_BENCH_CPU_PROF: runs dist/src/main.js under
 * the in-process V8 CPU profiler. Each SIGUSR2 ends the current profile, writes it to
 * $SIGNET_BENCH_CPU_PROF/<n>.cpuprofile (n = 0, 1, ...) and starts the next, so the bench gets one
 * profile per measured row. (`--cpu-prof` is not allowed in NODE_OPTIONS and writes only at exit.)
 */
'use strict';
const fs = require('node:fs');
const inspector = require('node:inspector');
const path = require('node:path');

const dir = process.env.SIGNET_BENCH_CPU_PROF;
const session = new inspector.Session();
session.connect();
session.post('Profiler.enable');
session.post('Profiler.setSamplingInterval', { interval: 200 });
session.post('Profiler.start');
let n = 0;
process.on('SIGUSR2', () => {
  session.post('Profiler.stop', (error, result) => {
    if (!error) fs.writeFileSync(path.join(dir, `${n++}.cpuprofile`), JSON.stringify(result.profile));
    session.post('Profiler.start');
  });
});
require(path.join(__dirname, '..', 'dist', 'src', 'main.js'));
