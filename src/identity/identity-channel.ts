/**
 * LISTEN/NOTIFY channel announcing identity changes. Payload: `provider:<id>` (a provider was
 * created, edited or deleted: its cached keys and token verifications go), `rules` (rules changed:
 * every cached token is matched again), or '*' (resync after a lost listener connection).
 */
export const IDENTITY_CHANNEL = 'signet_identity';
