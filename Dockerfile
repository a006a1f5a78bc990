# The Crébitos API image (linux/amd64): the compiled server.ts and its libpq addon, nothing else.
#   docker buildx build --platform linux/amd64 -t <user>/crebitos-api:<tag> --push .

# --- build: compile TypeScript and the pg-native addon (needs libpq headers and a C++ toolchain)
FROM node:20-bookworm-slim AS build
RUN apt-get update \
 && apt-get install -y --no-install-recommends python3 make g++ libpq-dev \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /app
COPY package.json package-lock.json ./
RUN npm ci --no-audit --no-fund
# Only server.ts is in the context (.dockerignore), so the project's own tsconfig builds just it.
COPY tsconfig.json server.ts ./
RUN npx tsc -p . && npm prune --omit=dev

# --- runtime: Node, the libpq shared library, the server and its production dependencies
FROM node:20-bookworm-slim
RUN apt-get update \
 && apt-get install -y --no-install-recommends libpq5 \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /app
COPY --from=build /app/node_modules ./node_modules
COPY --from=build /app/dist/server.js ./dist/server.js
COPY package.json ./
# The socket directory is a volume shared with nginx; a fresh volume copies this ownership.
RUN mkdir -p /run/crebitos && chown node:node /run/crebitos
USER node
ENV NODE_ENV=production
CMD ["node", "dist/server.js"]
