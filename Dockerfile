# syntax=docker/dockerfile:1
# Build: docker build -t misp-feed:latest .
# Run:   docker run -v misp-feed-data:/data -e OPENCTI_URL=... -e OPENCTI_TOKEN=... misp-feed:latest

FROM rust:1.94-bookworm AS builder
# aws-lc-sys (rustls' crypto) may fall back to a CMake build.
RUN apt-get update \
    && apt-get install -y --no-install-recommends cmake \
    && rm -rf /var/lib/apt/lists/*
WORKDIR /build
COPY Cargo.toml Cargo.lock ./
COPY src ./src
COPY migrations ./migrations
COPY benches ./benches
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/build/target \
    cargo build --release --locked --bin misp-feed \
    && install -D target/release/misp-feed /out/misp-feed \
    && mkdir -p /out/data

# glibc, libgcc and CA certificates, no shell; runs as uid 65532 ("nonroot").
FROM gcr.io/distroless/cc-debian12:nonroot
COPY --from=builder /out/misp-feed /usr/local/bin/misp-feed
# A new named volume takes this folder's owner, so the non-root user can write the ledger.
COPY --from=builder --chown=65532:65532 /out/data /data
ENV CONNECTOR_TYPE=EXTERNAL_IMPORT \
    MISP_FEED_LEDGER_PATH=/data/ledger.sqlite
VOLUME ["/data"]
WORKDIR /data
USER 65532:65532
EXPOSE 9095
ENTRYPOINT ["/usr/local/bin/misp-feed"]
CMD ["run"]
