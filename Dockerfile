# syntax=docker/dockerfile:1
#
# nestbot: a small static image.
#
#   docker build -t nestbot --build-arg VERSION=$(git describe --tags --always) .
#   docker run --rm --env-file nestbot.env -p 127.0.0.1:9090:9090 \
#     -v $PWD/config.yaml:/etc/nestbot/config.yaml:ro nestbot --config /etc/nestbot/config.yaml
#
# Secrets (NESTBOT_NOSTR_SECRET_KEY, NESTBOT_LIVEKIT_API_SECRET, a password in
# NESTBOT_REDIS_URL) come from the environment or a mounted secret file
# (nostr.secret_key_file), never from the image.

ARG GO_VERSION=1.26.8

FROM golang:${GO_VERSION} AS build
WORKDIR /src
# Modules first: this layer is reused until go.mod or go.sum change.
COPY go.mod go.sum ./
RUN --mount=type=cache,target=/go/pkg/mod go mod download
COPY . .
ARG VERSION=""
# CGO off: a static binary that needs no libc (pure-Go secp256k1).
RUN --mount=type=cache,target=/go/pkg/mod --mount=type=cache,target=/root/.cache/go-build \
    CGO_ENABLED=0 GOFLAGS=-buildvcs=false \
    go build -trimpath -ldflags "-s -w -X main.version=${VERSION}" -o /out/nestbot ./cmd/nestbot

# distroless/static: CA certificates (wss relays, https), tzdata, /etc/passwd
# with the nonroot user, and nothing else: no shell, no package manager.
FROM gcr.io/distroless/static-debian12:nonroot
COPY --from=build /out/nestbot /usr/local/bin/nestbot
# The ops listener (/healthz, /readyz, /metrics, the LiveKit webhook) must
# listen beyond the container's loopback to be probed; publish it only where
# probes and LiveKit can reach it.
ENV NESTBOT_HTTP_LISTEN=:9090 \
    NESTBOT_LOG_FORMAT=json
EXPOSE 9090
# 65532:65532 is distroless's nonroot user; numeric so that runtimes that
# check runAsNonRoot can verify it.
USER 65532:65532
ENTRYPOINT ["/usr/local/bin/nestbot", "run"]
