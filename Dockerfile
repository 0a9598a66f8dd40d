# The example app as Cerebrium (and any container platform) runs it. cerebrium.toml points here.

# Build stage: dev dependencies and the TypeScript compiler stay in this stage.
FROM node:24-bookworm-slim AS build
WORKDIR /app
# The example app is an npm workspace: its own runtime dependencies (@fastify/websocket) are not the plugin's.
COPY package.json package-lock.json ./
COPY example-app/package.json ./example-app/
# --ignore-scripts: `prepare` would build before the sources are copied.
RUN npm ci --ignore-scripts --no-audit --no-fund
COPY tsconfig.json tsconfig.build.json ./
COPY lib ./lib
COPY example-app ./example-app
RUN npm run build

# Run stage: production dependencies, the compiled app and the toml it reads its settings from.
FROM node:24-bookworm-slim
ENV NODE_ENV=production
WORKDIR /app
COPY package.json package-lock.json ./
COPY example-app/package.json ./example-app/
RUN npm ci --omit=dev --ignore-scripts --no-audit --no-fund && npm cache clean --force
COPY --from=build /app/dist ./dist
COPY cerebrium.toml ./
# The image's own unprivileged user; the files stay root's, so the app cannot rewrite itself.
USER node
EXPOSE 8000
# Exec form with node itself as PID 1, so SIGTERM reaches the app. In shell form /bin/sh is PID 1
# and does not pass SIGTERM on; `npm start` puts npm and a shell in between. Either way the drain
# never starts and the platform's SIGKILL cuts every request in flight.
CMD ["node", "dist/example-app/server.js"]
