# syntax=docker/dockerfile:1
#
# mvrepair consumer image (DESIGN.md §6): a static Go binary on distroless,
# running as the non-root user 65532. Built by docker-compose.yml; the test
# package internal/deploytest keeps this file in step with the code (and runs
# the go build line below with the same flags).

# ---- build -------------------------------------------------------------------
FROM golang:1.26-bookworm AS build
WORKDIR /src

# Modules first, so source edits do not invalidate the download layer.
COPY go.mod go.sum ./
RUN --mount=type=cache,target=/go/pkg/mod \
    go mod download

COPY . .
RUN --mount=type=cache,target=/go/pkg/mod \
    --mount=type=cache,target=/root/.cache/go-build \
    CGO_ENABLED=0 go build -trimpath -ldflags='-s -w' -o /out/consumer ./cmd/consumer

# The state dir, owned by the runtime user: a named volume mounted there is
# initialised from it, so the non-root process can write its store.
RUN mkdir -p /out/state

# ---- runtime -----------------------------------------------------------------
FROM gcr.io/distroless/static-debian12:nonroot
WORKDIR /
COPY --from=build /out/consumer /consumer
COPY --from=build --chown=65532:65532 /out/state /var/lib/mvrepair
ENV MVREPAIR_STATE_DIR=/var/lib/mvrepair \
    MVREPAIR_HTTP_ADDR=:8080
VOLUME /var/lib/mvrepair
EXPOSE 8080
USER 65532:65532
ENTRYPOINT ["/consumer"]
CMD ["run"]
