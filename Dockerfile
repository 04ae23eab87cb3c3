# syntax=docker/dockerfile:1
# Multi-stage build: compile on Debian with the system OpenSSL and libxmlsec1, run as non-root.
FROM rust:1.88-bookworm AS build
RUN apt-get update && apt-get install -y --no-install-recommends \
      cmake clang libclang-dev libssl-dev libxml2-dev libxmlsec1-dev pkg-config \
    && rm -rf /var/lib/apt/lists/*
ENV OPENSSL_NO_VENDOR=1
WORKDIR /src
COPY . .
# BuildKit cache mounts keep the registry and target/ between builds.
RUN --mount=type=cache,target=/usr/local/cargo/registry --mount=type=cache,target=/src/target \
    cargo build --release --locked --bin ssogate && cp target/release/ssogate /usr/local/bin/ssogate

FROM debian:bookworm-slim
RUN apt-get update && apt-get install -y --no-install-recommends \
      ca-certificates libssl3 libxml2 libxmlsec1 libxmlsec1-openssl \
    && rm -rf /var/lib/apt/lists/* \
    && useradd --system --uid 10001 --home /nonexistent --shell /usr/sbin/nologin ssogate
COPY --from=build /usr/local/bin/ssogate /usr/local/bin/ssogate
USER 10001
EXPOSE 8080 9090
ENTRYPOINT ["/usr/local/bin/ssogate"]
CMD ["run", "--config", "/etc/ssogate/ssogate.toml"]
