export { ActiveKeyCache, KEYS_CHANNEL } from './active-key-cache';
export type { ActiveKey } from './active-key-cache';
export { SigningModule } from './signing.module';
export { SigningService } from './signing.service';
