import type { NestFastifyApplication } from '@nestjs/platform-fastify';
import type { InjectOptions, Response } from 'light-my-request';
import { ruleFor } from './route-roles';

/** What the route tests read of an answer. */
export interface Answer {
  statusCode: number;
  headers: Response['headers'];
  body: string;
  json(): any; // eslint-disable-line @typescript-eslint/no-explicit-any -- bodies are read loosely in tests
}

/**
 * app.inject for any route of the table, event streams included: a stream route's 200 never ends,
 * so it is taken as answered once its headers arrive (the stream is then dropped); its errors are
 * read whole like any other answer.
 */
export async function injectAnswer(
  app: NestFastifyApplication,
  route: { method: string; url: string },
  options: InjectOptions,
): Promise<Answer> {
  if (!ruleFor(route.method, route.url)?.stream) return app.inject(options);
  const response = await app.inject({ ...options, payloadAsStream: true });
  const stream = response.stream();
  if (response.statusCode === 200) {
    stream.destroy();
    return { statusCode: 200, headers: response.headers, body: '', json: () => ({}) };
  }
  const chunks: Buffer[] = [];
  for await (const chunk of stream) chunks.push(Buffer.from(chunk as Buffer));
  const body = Buffer.concat(chunks).toString('utf8');
  return { statusCode: response.statusCode, headers: response.headers, body, json: () => JSON.parse(body) };
}
