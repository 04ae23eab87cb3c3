# syntax=docker/dockerfile:1
# Multi-stage build: compile on Debian with the system OpenSSL and libxmlsec1, run as non-root.
# The Rust tag is the lockfile's need: tests/deploy.rs checks that the highest rust-version
# among the locked dependencies <= Cargo.toml's rust-version <= this tag, and that every
# shared library the binary loads comes from a package the runtime stage installs.
FROM rust:1.95-bookworm AS build
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
# Readiness from the admin listener, with the binary itself (no curl in the image). The
# config's listen.admin must be reachable on 127.0.0.1:9090 inside the container.
HEALTHCHECK --interval=10s --timeout=3s --start-period=10s --retries=3 \
  CMD ["/usr/local/bin/ssogate", "probe", "--admin", "127.0.0.1:9090"]
ENTRYPOINT ["/usr/local/bin/ssogate"]
CMD ["run", "--config", "/etc/ssogate/ssogate.toml"]
