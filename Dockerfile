# The georep agent and CLI. Build: docker build -t georep .
FROM node:20-bookworm-slim AS build
WORKDIR /app
COPY package.json package-lock.json turbo.json tsconfig.json tsconfig.base.json ./
COPY packages ./packages
RUN npm ci --no-audit --no-fund && npx turbo run build && npm prune --omit=dev

FROM node:20-bookworm-slim
WORKDIR /app
COPY --from=build /app/package.json ./
COPY --from=build /app/node_modules ./node_modules
COPY --from=build /app/packages ./packages
ENV NODE_ENV=production
EXPOSE 9464
ENTRYPOINT ["node", "/app/packages/cli/dist/bin.js"]
CMD ["agent", "--config", "/etc/georep/agent.json"]
