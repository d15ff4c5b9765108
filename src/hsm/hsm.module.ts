import { type DynamicModule, type FactoryProvider, Global, Logger, Module, type ModuleMetadata, type Provider } from '@nestjs/common';
import type { HsmOptions } from './hsm-options';
import { KEY_STORE } from './key-store';
import { Pkcs11KeyStore } from './pkcs11-key-store';

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
  ];
}

/**
 * Platform module: provides the KeyStore (by class `Pkcs11KeyStore` and by the `KEY_STORE` token)
 * to the whole application. The store closes its sessions on module destroy.
 */
@Global()
@Module({})
export class HsmModule {
  static forRoot(options: HsmOptions): DynamicModule {
    return {
      module: HsmModule,
      global: true,
      providers: [{ provide: HSM_OPTIONS, useValue: options }, ...storeProviders()],
      exports: [Pkcs11KeyStore, KEY_STORE],
    };
  }

  /** For options derived from the config module (`inject: [ConfigService]`). */
  static forRootAsync(options: HsmModuleAsyncOptions): DynamicModule {
    return {
      module: HsmModule,
      global: true,
      imports: options.imports ?? [],
      providers: [
        { provide: HSM_OPTIONS, useFactory: options.useFactory as (...args: unknown[]) => HsmOptions | Promise<HsmOptions>, inject: options.inject ?? [] },
        ...storeProviders(),
      ],
      exports: [Pkcs11KeyStore, KEY_STORE],
    };
  }
}
