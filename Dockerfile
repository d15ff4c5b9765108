# Signet server image. SoftHSM2 is included for development-like deployments; in production
# point SIGNET_PKCS11_MODULE at your HSM vendor's PKCS#11 library (mounted or installed here).
FROM node:24-bookworm-slim AS build
RUN apt-get update && apt-get install -y --no-install-recommends python3 make g++ && rm -rf /var/lib/apt/lists/*
WORKDIR /app
COPY package.json package-lock.json ./
RUN npm ci --no-audit --no-fund
COPY tsconfig.json tsconfig.build.json ormconfig.ts ./
COPY src ./src
COPY migrations ./migrations
RUN npm run build && npm prune --omit=dev

FROM node:24-bookworm-slim
RUN apt-get update && apt-get install -y --no-install-recommends softhsm2 opensc ca-certificates tini \
    && rm -rf /var/lib/apt/lists/* \
    && useradd --system --create-home --home-dir /var/lib/signet --shell /usr/sbin/nologin signet
WORKDIR /app
COPY --from=build /app/node_modules ./node_modules
COPY --from=build /app/dist ./dist
COPY package.json ./
COPY bin ./bin
COPY scripts ./scripts
USER signet
# V8's old space capped as `npm start` does (SIGNET_MAX_HEAP_MB there); raise it with NODE_OPTIONS.
ENV NODE_ENV=production \
    UV_THREADPOOL_SIZE=16 \
    NODE_OPTIONS=--max-old-space-size=512 \
    SIGNET_DATA_DIR=/var/lib/signet \
    SIGNET_PORT=8080
VOLUME ["/var/lib/signet"]
EXPOSE 8080
HEALTHCHECK --interval=10s --timeout=3s --start-period=60s CMD node -e "fetch('http://127.0.0.1:8080/readyz').then(r=>process.exit(r.ok?0:1),()=>process.exit(1))"
ENTRYPOINT ["/usr/bin/tini", "--"]
CMD ["node", "dist/src/main.js"]
