import type { Principal } from './principal';
import { type ConnectionTokenMemo, TOKEN_PREFIX } from './token.service';

/**
 * Authenticates bearer OIDC ID tokens (src/identity, workload identity). AuthGuard asks it only
 * for bearer values shaped like a JWS (never for `sgt_` tokens, whose path stays as it was); the
 * identity module provides it, so this folder does not import that one.
 */
export const ID_TOKEN_AUTHENTICATOR = Symbol('ID_TOKEN_AUTHENTICATOR');

export interface IdTokenAuthenticator {
  /**
   * The principal for a verified ID token, or 401/503. Synchronous when the token's verification is
   * cached. `connection`: the keep-alive connection's memo of its last bearer value and its hash.
   */
  authenticate(token: string, address: string, connection?: ConnectionTokenMemo): Principal | Promise<Principal>;
}

/** JWS compact serialisation: three base64url parts (the signature may be empty, as in `alg: none`). */
const JWS_COMPACT = /^[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]*$/;

/** Whether a bearer value is meant as an ID token rather than an API token. */
export function isIdTokenShaped(token: string): boolean {
  return !token.startsWith(TOKEN_PREFIX) && JWS_COMPACT.test(token);
}
