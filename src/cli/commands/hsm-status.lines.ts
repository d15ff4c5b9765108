import { describeCapabilities } from '../../hsm/hsm-capabilities';
import { KEY_STORE, type KeyStore } from '../../hsm/key-store';
import { addStatusLines } from './status.command';

/** `signet status`: what each HSM token can do (key specs, sealing), from the capability probe at start. */
addStatusLines(async (app) =>
  app
    .get<KeyStore>(KEY_STORE, { strict: false })
    .health()
    .tokens.filter((token) => token.capabilities)
    .map(
      (token) =>
        `hsm capabilities: ${describeCapabilities(token.tokenLabel, token.capabilities as NonNullable<typeof token.capabilities>)}`,
    ),
);
