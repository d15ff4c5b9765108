import { SetMetadata } from '@nestjs/common';
import type { SignetConfig } from '../config/config';
import { Role } from './roles';

export const ROLES_METADATA = 'signet:roles';
export const PUBLIC_METADATA = 'signet:public';

/**
 * The roles that may call a route (on a handler, or a controller for all its handlers). Every
 * route states its access with @Roles or @Public: the global AuthGuard denies a route that has
 * neither (fail closed).
 */
export const Roles = (...roles: Role[]) => SetMetadata(ROLES_METADATA, roles);

/**
 * No authentication. With a condition, the route is public only when the condition holds for the
 * running configuration (e.g. /metrics with SIGNET_METRICS_PUBLIC) and falls back to @Roles.
 */
export const Public = (when?: (config: SignetConfig) => boolean) => SetMetadata(PUBLIC_METADATA, when ?? true);
