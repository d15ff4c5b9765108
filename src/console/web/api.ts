/**
 * The console's one way to the API: same origin, the session cookie (HttpOnly, so the page never
 * sees it), and the CSRF token from the session answer on every state-changing call. The token the
 * user signed in with is sent once, in POST /v1/sessions, and never kept.
 */
import type { Session } from './lib/types';

export class ApiError extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
  ) {
    super(message);
  }
}

let csrfToken: string | null = null;
/** Called when the server says the session is gone (401), so the page shows the sign-in form. */
let onSignedOut: () => void = () => undefined;

export function setSignedOutHandler(handler: () => void): void {
  onSignedOut = handler;
}

export async function request<T>(method: string, path: string, body?: unknown): Promise<T> {
  const headers: Record<string, string> = { accept: 'application/json' };
  if (body !== undefined) headers['content-type'] = 'application/json';
  if (method !== 'GET' && method !== 'HEAD' && csrfToken) headers['x-csrf-token'] = csrfToken;
  const response = await fetch(path, {
    method,
    headers,
    body: body === undefined ? undefined : JSON.stringify(body),
    credentials: 'same-origin',
    cache: 'no-store',
  });
  const text = await response.text();
  const json: unknown = text ? safeJson(text) : null;
  if (!response.ok) {
    const error = (json as { error?: { code?: string; message?: string } } | null)?.error;
    // A 401 on sign-in or on the session probe is an answer, not a session that just ended.
    if (response.status === 401 && !path.startsWith('/v1/sessions')) {
      csrfToken = null;
      onSignedOut();
    }
    throw new ApiError(
      response.status,
      error?.code ?? `HTTP_${response.status}`,
      error?.message ?? `${method} ${path} answered ${response.status}`,
    );
  }
  return json as T;
}

function safeJson(text: string): unknown {
  try {
    return JSON.parse(text);
  } catch {
    return null;
  }
}

export const get = <T>(path: string) => request<T>('GET', path);
export const post = <T>(path: string, body: unknown = {}) => request<T>('POST', path, body);

export async function signIn(token: string): Promise<Session> {
  const session = await post<Session>('/v1/sessions', { token });
  csrfToken = session.csrfToken;
  return session;
}

/** The session the cookie stands for, or null (no cookie, expired, signed out elsewhere). */
export async function currentSession(): Promise<Session | null> {
  try {
    const session = await get<Session>('/v1/sessions/current');
    csrfToken = session.csrfToken ?? csrfToken;
    return session;
  } catch (error) {
    if (error instanceof ApiError && (error.status === 401 || error.status === 404)) return null;
    throw error;
  }
}

export async function signOut(): Promise<void> {
  try {
    await request('DELETE', '/v1/sessions');
  } finally {
    csrfToken = null;
  }
}

/** Query string from the non-empty values. */
export function query(params: Record<string, string | number | undefined | null>): string {
  const search = new URLSearchParams();
  for (const [name, value] of Object.entries(params))
    if (value !== undefined && value !== null && value !== '') search.set(name, String(value));
  const text = search.toString();
  return text ? `?${text}` : '';
}
