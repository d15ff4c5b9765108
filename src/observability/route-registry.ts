import type { FastifyInstance, RouteOptions } from 'fastify';

export interface RegisteredRoute {
  method: string;
  url: string;
}

const registries = new WeakMap<FastifyInstance, RegisteredRoute[]>();

/**
 * Records every route the application registers (Nest controllers, Swagger, anything added
 * later), so the authorisation matrix can be checked against what really serves requests.
 * Call before the routes are registered (before app.init()).
 */
export function recordRoutes(fastify: FastifyInstance): void {
  const routes: RegisteredRoute[] = [];
  registries.set(fastify, routes);
  fastify.addHook('onRoute', (route: RouteOptions) => {
    for (const method of Array.isArray(route.method) ? route.method : [route.method]) {
      if (method === 'HEAD' || method === 'OPTIONS') continue;
      routes.push({ method, url: route.url });
    }
  });
}

export function registeredRoutes(fastify: FastifyInstance): RegisteredRoute[] {
  return [...(registries.get(fastify) ?? [])];
}
