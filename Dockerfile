# Multi-stage build of the testlayer binary into a small non-root image.
#
#   docker build -t testlayer .
#
# Without an engine, `bash scripts/image.sh` builds the equivalent image as an
# OCI archive (same binary build, entrypoint, command, user and port; the
# libraries from the build machine): the tests build and run that one, and
# tests/image.rs holds the two to each other.
#
# The build stage caches the cargo registry and target directory between
# builds. To build offline, vendor the dependencies first
# (`cargo vendor > .cargo/config.toml` adds the source replacement) and pass
# `--build-arg CARGO_NET_OFFLINE=true`.
FROM rust:1.95-slim-bookworm AS build
ARG CARGO_NET_OFFLINE=false
ENV CARGO_NET_OFFLINE=${CARGO_NET_OFFLINE}
WORKDIR /src
COPY . .
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    cargo build --release --locked --bin testlayer \
 && install -D -m 0755 target/release/testlayer /out/testlayer \
 && strip --strip-debug /out/testlayer

# distroless/cc provides exactly the libraries the binary links against
# (glibc, libgcc_s); it has no shell and runs as uid 65532.
FROM gcr.io/distroless/cc-debian12:nonroot
COPY --from=build /out/testlayer /usr/local/bin/testlayer
USER 65532:65532
EXPOSE 8080
ENTRYPOINT ["/usr/local/bin/testlayer"]
CMD ["controller"]
