import { SHARE_ENV, Worker } from 'node:worker_threads';

const SET_ENV_SOURCE = `
const { workerData } = require('node:worker_threads');
process.env[workerData.name] = workerData.value;
`;

/**
 * Sets an environment variable where native code (getenv in a PKCS#11 module) reads it.
 *
 * Assigning process.env is enough in plain Node, but under jest (and other vm sandboxes) process.env
 * is a copy and the assignment never reaches the real environment. A worker started with SHARE_ENV
 * shares the process environment for reading and writing, so its assignment does.
 */
export async function setNativeEnvironmentVariable(name: string, value: string): Promise<void> {
  process.env[name] = value;
  await new Promise<void>((resolve, reject) => {
    const worker = new Worker(SET_ENV_SOURCE, { eval: true, env: SHARE_ENV, workerData: { name, value } });
    worker.once('error', reject);
    worker.once('exit', (code) =>
      code === 0 ? resolve() : reject(new Error(`could not set ${name} (worker exited with ${code})`)),
    );
  });
}
