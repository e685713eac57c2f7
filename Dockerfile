# The operator's image: one static binary, the CA bundle, a numeric non-root user.
#
#   docker build -t imagestream-operator .      (or: buildah bud -t imagestream-operator .)
#
# `make image` builds the same final stage from the binary `make release-static` already built,
# with no Rust image to pull: --build-arg BINARY=prebuilt and a context directory holding
# imagestream-operator and ca-certificates.crt (scripts/build-image.sh).
ARG BINARY=build

FROM docker.io/library/rust:1.95-trixie AS build
WORKDIR /src
# only what the build reads (target/ in the context can be gigabytes); cargo checks that the
# benches Cargo.toml declares exist
COPY Cargo.toml Cargo.lock ./
COPY benches benches
COPY src src
COPY scripts/build-release.sh scripts/
# the script `make test` runs: static, checked to be static and to start
RUN scripts/build-release.sh /out && cp /etc/ssl/certs/ca-certificates.crt /out/

FROM scratch AS prebuilt
COPY imagestream-operator ca-certificates.crt /out/

FROM ${BINARY} AS binary

FROM scratch
COPY --from=binary /out/ca-certificates.crt /etc/ssl/certs/ca-certificates.crt
COPY --from=binary /out/imagestream-operator /imagestream-operator
# numeric, so that runAsNonRoot can be checked without an /etc/passwd
USER 65532:65532
# webhooks (HTTPS), then /livez, /readyz and /metrics (HTTP)
EXPOSE 9443 8080
ENTRYPOINT ["/imagestream-operator", "run"]
