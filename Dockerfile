# pairpref, CPU image. Build (docs: deploy/README.md):
#   docker build -t pairpref .
#   podman build --format docker -t pairpref .      # --format docker keeps HEALTHCHECK (OCI has none)
# Run:
#   docker run --rm -p 50051:50051 -p 50052:50052 -p 9464:9464 pairpref
#
# BASE_IMAGE must have node >= 20 and npm on PATH, and apt-get when it has no tini. The default is the
# official Node image; deploy/container-test.sh builds on a debootstrapped Debian trixie stand-in.
# A TLS-intercepting proxy in the build: --secret id=npm_ca,src=/path/to/ca.pem (added to node's CAs
# for `npm ci` only; not kept in the image).
ARG BASE_IMAGE=node:20-bookworm-slim

# ---- deps: production node_modules only -------------------------------------------------------
FROM ${BASE_IMAGE} AS deps
WORKDIR /app
# .npmrc (ignore-scripts=true) must come with the lockfile: onnxruntime-node's postinstall would
# otherwise try to download CUDA binaries from api.nuget.org. tsx is a production dependency: the
# CLI runs the TypeScript sources directly.
COPY package.json package-lock.json .npmrc ./
# onnxruntime-node ships native libraries for darwin, win32 and linux on x64 and arm64 (~290 MB); this
# image only ever loads bin/napi-v6/linux/<its own arch>, so the others are deleted; the native
# tokenizer ships one .node file per platform (~64 MB in all), of which glibc linux/<arch> is kept. The
# last line checks that onnxruntime, the tokenizer and esbuild (tsx's transformer; its install script is
# skipped too) load.
RUN --mount=type=secret,id=npm_ca \
    set -eu; \
    export npm_config_update_notifier=false; \
    if [ -s /run/secrets/npm_ca ]; then export NODE_EXTRA_CA_CERTS=/run/secrets/npm_ca; fi; \
    npm ci --omit=dev --no-audit --no-fund --loglevel=warn; \
    npm cache clean --force >/dev/null 2>&1 || true; \
    arch="$(node -p process.arch)"; \
    ort=node_modules/onnxruntime-node/bin/napi-v6; \
    test -f "$ort/linux/$arch/onnxruntime_binding.node"; \
    find "$ort" -mindepth 1 -maxdepth 1 ! -name linux -exec rm -rf {} +; \
    find "$ort/linux" -mindepth 1 -maxdepth 1 ! -name "$arch" -exec rm -rf {} +; \
    tok="$(node -p "'tokenizers.linux-' + process.arch + '-gnu.node'")"; \
    test -f "node_modules/tokenizers/$tok"; \
    find node_modules/tokenizers -maxdepth 1 -name 'tokenizers.*.node' ! -name "$tok" -delete; \
    node -e "require('onnxruntime-node'); require('tokenizers'); require('esbuild').transformSync('let a: number = 1', { loader: 'ts' })"

# ---- runtime -----------------------------------------------------------------------------------
FROM ${BASE_IMAGE}
# tini as PID 1: forwards SIGTERM to node (which drains, then exits 0) and reaps zombies.
# A fixed numeric non-root user, so Kubernetes' runAsNonRoot can check it.
RUN set -eu; \
    if ! command -v tini >/dev/null; then \
      apt-get update; \
      DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends tini; \
      rm -rf /var/lib/apt/lists/* /var/cache/apt/*.bin /var/log/apt /var/log/dpkg.log; \
    fi; \
    groupadd --system --gid 10001 pairpref; \
    useradd --system --uid 10001 --gid 10001 --home-dir /app --no-create-home --shell /usr/sbin/nologin pairpref

WORKDIR /app
# ORT_DISABLE_TELEMETRY=1: onnxruntime 1.30 starts a telemetry component (HTTPS uploads) when it
# loads; without it, this image logs two onnxruntime warnings at start (no CA bundle for the uploads,
# no writable place for a device id).
ENV NODE_ENV=production ORT_DISABLE_TELEMETRY=1
COPY --from=deps /app/node_modules ./node_modules
# What `serve`, `score`, `eval` and `bench` import at run time (cli/main.ts registers all four), and
# the .proto files the server loads for reflection. No tests, training, web page or dev dependencies.
COPY package.json tsconfig.json ./
COPY bin ./bin
COPY cli ./cli
COPY core ./core
COPY platform ./platform
COPY runtime ./runtime
COPY engine ./engine
COPY protocol ./protocol
COPY server ./server
COPY client ./client
COPY datasets ./datasets
COPY bench ./bench
COPY proto/pairpref ./proto/pairpref
COPY proto/gen ./proto/gen
COPY proto/gen-es ./proto/gen-es
# The default model lives under /models; mount your own bundle at /models/<name> and pass
# --model /models/<name>. /app/models points there, so serve's own default (models/default) works too.
COPY models/default /models/default
RUN ln -s /models /app/models && node bin/pairpref.mjs --version && rm -rf /tmp/tsx-*

USER 10001:10001
# 50051: gRPC (PairwisePreference, health, reflection). 50052: plaintext grpc.health.v1.Health only,
# for probes (stays plaintext when 50051 uses TLS or a token). 9464: Prometheus /metrics.
EXPOSE 50051 50052 9464
# Docker's probe (podman keeps it only with --format docker): grpc.health.v1.Health/Check on the
# health port over HTTP/2 with no dependency; healthy when the answer is SERVING (bytes 08 01).
# Kubernetes: a grpc probe on port 50052 (deploy/README.md).
HEALTHCHECK --interval=10s --timeout=5s --start-period=60s --retries=3 \
  CMD ["node", "-e", "const c=require('node:http2').connect('http://127.0.0.1:'+(process.env.PAIRPREF_HEALTH_PORT||50052));c.on('error',()=>process.exit(1));const r=c.request({':method':'POST',':path':'/grpc.health.v1.Health/Check','content-type':'application/grpc',te:'trailers'});let b=Buffer.alloc(0);r.on('data',d=>{b=Buffer.concat([b,d])});r.on('end',()=>process.exit(b.length===7&&b[5]===8&&b[6]===1?0:1));r.on('error',()=>process.exit(1));r.end(Buffer.alloc(5));setTimeout(()=>process.exit(1),4000).unref()"]
ENTRYPOINT ["tini", "--", "node", "/app/bin/pairpref.mjs"]
CMD ["serve", "--host", "0.0.0.0", "--port", "50051", "--health-port", "50052", "--metrics-port", "9464", "--model", "/models/default"]
