# Multi-stage build: cargo-chef caches the dependency layer, so a code change rebuilds only
# the crate itself. The runtime image carries the binary and nothing else.
FROM rust:1.95-slim-bookworm AS chef
# LightGBM builds from source: libclang for its bindings, CMake 3.28 or newer (Debian 12 has
# 3.25, so it comes from PyPI) and a C++ compiler with OpenMP.
RUN apt-get update \
    && apt-get install -y --no-install-recommends libclang-dev g++ python3-venv \
    && rm -rf /var/lib/apt/lists/* \
    && python3 -m venv /opt/cmake && /opt/cmake/bin/pip install --no-cache-dir cmake
ENV CMAKE=/opt/cmake/bin/cmake
RUN cargo install cargo-chef --locked --version ^0.1
WORKDIR /app

FROM chef AS planner
COPY . .
RUN cargo chef prepare --recipe-path recipe.json

FROM chef AS builder
COPY --from=planner /app/recipe.json recipe.json
RUN cargo chef cook --release --locked --recipe-path recipe.json --bin etape
COPY . .
RUN cargo build --release --locked --bin etape

FROM debian:bookworm-slim AS runtime
RUN apt-get update \
    && apt-get install -y --no-install-recommends ca-certificates tzdata libgomp1 \
    && rm -rf /var/lib/apt/lists/* \
    && useradd --system --uid 10001 --home-dir /var/lib/etape --create-home etape
COPY --from=builder /app/target/release/etape /usr/local/bin/etape
USER etape
WORKDIR /var/lib/etape
# The bundled model, where the default setting model.dir looks for it.
COPY --chown=etape data/models/bundled data/models/bundled
# Inside a container the service must listen on every interface; JSON logs suit collectors.
ENV ETAPE__SERVER__BIND=0.0.0.0:8080 \
    ETAPE__LOG__FORMAT=json
# Shipments, webhooks, ETA history and pings: mount a volume to keep them across containers.
RUN mkdir -p data/live
VOLUME /var/lib/etape/data/live
EXPOSE 8080
HEALTHCHECK --interval=15s --timeout=5s --start-period=10s --retries=3 \
    CMD ["etape", "healthcheck"]
ENTRYPOINT ["etape"]
# No demo fleet: an image is for running. `docker run … etape serve` starts one for a trial.
CMD ["serve", "--no-demo"]
