# Nexus: one image for every service (`nexus serve --service <name>`) and the operator.
# Multi-stage: build with the full toolchain, ship only dist/ and production dependencies.
# No Docker engine runs on the development machines; build with `docker build -t nexus .`.
FROM node:24-bookworm-slim AS build
WORKDIR /app
COPY package.json package-lock.json ./
RUN npm ci --no-audit --no-fund
COPY tsconfig.json ./
COPY gen ./gen
COPY services ./services
COPY operator ./operator
COPY scripts ./scripts
COPY bench ./bench
COPY console ./console
# The web console (docs/console.md) is built to console/dist and served at /console.
RUN npx tsc -p tsconfig.json && node scripts/build-console.ts --force && npm prune --omit=dev

FROM node:24-bookworm-slim
ENV NODE_ENV=production
WORKDIR /app
COPY --from=build /app/package.json ./
COPY --from=build /app/node_modules ./node_modules
COPY --from=build /app/dist ./dist
COPY --from=build /app/console/dist ./console/dist
# GET /openapi.json serves the committed OpenAPI description.
COPY docs/openapi.json ./docs/openapi.json
# pg_dump / pg_restore for `nexus backup` and `nexus restore` (docs/governance.md#backups).
RUN apt-get update && apt-get install -y --no-install-recommends postgresql-client && rm -rf /var/lib/apt/lists/*
# Non-root, read-only friendly: nothing is written under /app at run time.
USER node
EXPOSE 8080
ENTRYPOINT ["node", "dist/services/cli/main.js"]
CMD ["serve"]
