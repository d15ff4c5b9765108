import {
  type DynamicModule,
  type FactoryProvider,
  Global,
  Logger,
  Module,
  type ModuleMetadata,
  type Provider,
} from '@nestjs/common';
import { HsmHealthIndicator } from './hsm.health';
import { HsmMetrics } from './hsm.metrics';
import type { HsmOptions } from './hsm-options';
import { HSM_RECONCILER } from './hsm-reconciler';
import { KEY_MANAGER } from './key-manager';
import { KEY_STORE } from './key-store';
import { Pkcs11KeyStore } from './pkcs11-key-store';
import { SEALER } from './sealer';
import { SIGNER_FACTORY } from './signer-factory';

/** Injection token of the plain HsmOptions object the module was configured with. */
export const HSM_OPTIONS = Symbol('HSM_OPTIONS');

export interface HsmModuleAsyncOptions extends Pick<ModuleMetadata, 'imports'> {
  useFactory: (...args: never[]) => HsmOptions | Promise<HsmOptions>;
  inject?: FactoryProvider['inject'];
}

function storeProviders(): Provider[] {
  return [
    {
      provide: Pkcs11KeyStore,
      // Opening at boot makes a wrong PIN, label or module path stop the process with a clear message.
      useFactory: async (options: HsmOptions) => {
        const store = new Pkcs11KeyStore(options, { logger: new Logger('Hsm') });
        await store.open();
        return store;
      },
      inject: [HSM_OPTIONS],
    },
    { provide: KEY_STORE, useExisting: Pkcs11KeyStore },
    // The parts, each behind its own small interface; derived from the store, so a test that
    // overrides Pkcs11KeyStore overrides them too.
    { provide: KEY_MANAGER, useFactory: (store: Pkcs11KeyStore) => store.keys, inject: [Pkcs11KeyStore] },
    { provide: SIGNER_FACTORY, useFactory: (store: Pkcs11KeyStore) => store.signers, inject: [Pkcs11KeyStore] },
    { provide: SEALER, useFactory: (store: Pkcs11KeyStore) => store.sealer, inject: [Pkcs11KeyStore] },
    { provide: HSM_RECONCILER, useFactory: (store: Pkcs11KeyStore) => store.reconciler, inject: [Pkcs11KeyStore] },
    // The HSM's /readyz check and gauges, registered with observability when it is there.
    HsmHealthIndicator,
    HsmMetrics,
  ];
}

const EXPORTS = [Pkcs11KeyStore, KEY_STORE, KEY_MANAGER, SIGNER_FACTORY, SEALER, HSM_RECONCILER];

/**
 * Adapter module: provides the KeyStore (by class `Pkcs11KeyStore` and by the `KEY_STORE` token)
 * and its parts (`KEY_MANAGER`, `SIGNER_FACTORY`, `SEALER`, `HSM_RECONCILER`) to the whole
 * application, and registers the HSM's health check and metrics with observability. The store
 * closes its sessions on module destroy.
 */
@Global()
@Module({})
export class HsmModule {
  static forRoot(options: HsmOptions): DynamicModule {
    return {
      module: HsmModule,
      global: true,
      providers: [{ provide: HSM_OPTIONS, useValue: options }, ...storeProviders()],
      exports: EXPORTS,
    };
  }

  /** For options derived from the config module (`inject: [ConfigService]`). */
  static forRootAsync(options: HsmModuleAsyncOptions): DynamicModule {
    return {
      module: HsmModule,
      global: true,
      imports: options.imports ?? [],
      providers: [
        {
          provide: HSM_OPTIONS,
          useFactory: options.useFactory as (...args: unknown[]) => HsmOptions | Promise<HsmOptions>,
          inject: options.inject ?? [],
        },
        ...storeProviders(),
      ],
      exports: EXPORTS,
    };
  }
}
