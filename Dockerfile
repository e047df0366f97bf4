# Sluice's controller image, for those who build with Docker (or BuildKit, Podman, Kaniko).
#
# The same image as `make image`, which needs no container daemon: on an empty base, the
# `sluice` binary, the shared libraries ldd names for it (laid out by the same code,
# `sluice-image rootfs`), /etc/passwd and /etc/group naming user 65532, /etc/nsswitch.conf;
# user 65532, `sluice` as entrypoint, `controller` as default argument, no shell, the same OCI
# labels. How it was checked: docs/operations.md, "Building with Docker".
#
#   docker build --build-arg REVISION=$(git rev-parse HEAD) \
#     --build-arg SOURCE_DATE_EPOCH=$(git log -1 --format=%ct) \
#     -t ghcr.io/sluice-rollouts/sluice:0.1.0 .

# The release this Dockerfile builds: the workspace version in Cargo.toml (a test compares them,
# and the build stage refuses a binary that reports another).
ARG VERSION=0.1.0

FROM docker.io/library/rust:1.95-bookworm AS build
ARG VERSION
ARG REVISION
ARG SOURCE_DATE_EPOCH
WORKDIR /src
COPY . .
RUN test -n "$REVISION" || { echo 'docker build: pass --build-arg REVISION=$(git rev-parse HEAD), the commit the image is labelled with' >&2; exit 1; }
RUN SLUICE_GIT_COMMIT="$REVISION" cargo build --release --locked --bin sluice \
 && test "$(target/release/sluice version --short)" = "v${VERSION}+$(echo "$REVISION" | cut -c1-7)" \
 && cargo run --release --locked -p sluice-image -- rootfs --binary target/release/sluice --out /rootfs

FROM scratch
ARG VERSION
ARG REVISION
COPY --from=build /rootfs/ /
USER 65532:65532
ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
WORKDIR /
ENTRYPOINT ["/usr/bin/sluice"]
CMD ["controller"]
LABEL org.opencontainers.image.title="sluice" \
      org.opencontainers.image.description="A progressive-delivery controller for Kubernetes implementing the Argo Rollouts API" \
      org.opencontainers.image.source="https://github.com/sluice-rollouts/sluice" \
      org.opencontainers.image.licenses="Apache-2.0" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.revision="${REVISION}"
