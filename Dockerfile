# Build stage: compiles TypeScript and the better-sqlite3 native addon, then drops dev dependencies.
FROM node:20-bookworm-slim AS build
RUN apt-get update \
 && apt-get install -y --no-install-recommends python3 make g++ \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /app
COPY package.json package-lock.json ./
RUN npm ci
COPY tsconfig.json tsconfig.build.json ./
COPY src ./src
RUN npm run build && npm prune --omit=dev

# Runtime stage: only the compiled code, production dependencies and the default config.
FROM node:20-bookworm-slim
ENV NODE_ENV=production \
    LONGSHORE_LISTEN=0.0.0.0:5000 \
    LONGSHORE_DATA_DIR=/data
WORKDIR /app
COPY --from=build /app/node_modules ./node_modules
COPY --from=build /app/dist ./dist
COPY package.json mirror.config.json ./
RUN mkdir -p /data && chown node:node /data
USER node
VOLUME ["/data"]
EXPOSE 5000
# Asks /healthz wherever the config (file or LONGSHORE_LISTEN) makes the server listen.
HEALTHCHECK --interval=30s --timeout=3s --start-period=10s \
  CMD ["node", "dist/cli/main.js", "health"]
CMD ["node", "dist/main.js"]
