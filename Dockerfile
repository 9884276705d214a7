# syntax=docker/dockerfile:1

# The image holds one static binary and the CA bundle it needs to reach an
# OTLP endpoint over TLS. The eBPF objects are embedded in the binary, so the
# build needs neither clang nor cgo, and the running image needs no shell,
# libc or kernel headers (CO-RE reads the kernel's types from
# /sys/kernel/btf/vmlinux at run time).
#
#   docker buildx build --platform linux/amd64,linux/arm64 \
#     --build-arg VERSION=$(git describe --tags --always) \
#     --build-arg REVISION=$(git rev-parse HEAD) -t llm-observer .

ARG GO_VERSION=1.26

# The builder runs on the build machine's own platform and cross-compiles:
# a pure-Go build needs no emulation for the target.
FROM --platform=$BUILDPLATFORM golang:${GO_VERSION} AS build
# Set by BuildKit for each target platform; left empty by the legacy
# builder, where go then builds for the machine it runs on.
ARG TARGETOS
ARG TARGETARCH
ARG VERSION=dev
WORKDIR /src
# Modules first, in their own layer, so editing code does not download them
# again.
COPY go.mod go.sum ./
RUN --mount=type=cache,target=/go/pkg/mod go mod download
COPY . .
RUN --mount=type=cache,target=/go/pkg/mod --mount=type=cache,target=/root/.cache/go-build \
    CGO_ENABLED=0 GOOS=${TARGETOS} GOARCH=${TARGETARCH} \
    go build -trimpath -ldflags "-s -w -X main.version=${VERSION}" -o /out/llm-observer ./cmd/llm-observer

FROM scratch
ARG VERSION=dev
ARG REVISION=unknown
LABEL org.opencontainers.image.title="llm-observer" \
      org.opencontainers.image.description="eBPF agent that turns LLM API traffic on a host into OpenTelemetry GenAI traces, metrics and logs" \
      org.opencontainers.image.source="https://github.com/llm-observer/llm-observer" \
      org.opencontainers.image.url="https://github.com/llm-observer/llm-observer" \
      org.opencontainers.image.documentation="https://github.com/llm-observer/llm-observer#readme" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.revision="${REVISION}"
COPY --from=build /etc/ssl/certs/ca-certificates.crt /etc/ssl/certs/ca-certificates.crt
COPY --from=build /out/llm-observer /llm-observer
# No USER: loading eBPF programs and reading other processes' /proc entries
# needs root (or the capabilities listed in deploy/daemonset.yaml).
ENTRYPOINT ["/llm-observer"]
