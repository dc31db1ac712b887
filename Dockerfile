# syntax=docker/dockerfile:1
#
# approvebot as a container image: a static binary on distroless "static"
# (CA certificates, /etc/passwd with the nonroot user, no shell, no package
# manager). Build and run:
#
#   docker build -t approvebot .
#   docker run --rm -p 8080:8080 -v approvebot-data:/var/lib/approvebot \
#     -v "$PWD/approvebot.yaml:/etc/approvebot/approvebot.yaml:ro" \
#     --env-file approvebot.env approvebot
#
# The config must listen on 0.0.0.0:8080 and keep store.path (and the
# signing key) under /var/lib/approvebot.

ARG GO_VERSION=1.26

FROM golang:${GO_VERSION}-bookworm AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY . .
# With .git in the build context the binary records its VCS revision
# (approvebot version); --build-arg BUILDVCS=false builds without it.
ARG BUILDVCS=auto
ARG TARGETOS TARGETARCH
RUN CGO_ENABLED=0 GOOS=${TARGETOS} GOARCH=${TARGETARCH} \
    go build -buildvcs=${BUILDVCS} -trimpath -ldflags="-s -w" -o /out/approvebot ./cmd/approvebot \
 && mkdir -p /out/data

FROM gcr.io/distroless/static-debian12:nonroot
COPY --from=build /out/approvebot /usr/local/bin/approvebot
# The data directory, owned by the nonroot user, so that a fresh volume
# mounted there is writable.
COPY --from=build --chown=65532:65532 /out/data /var/lib/approvebot
USER 65532:65532
EXPOSE 8080
VOLUME ["/var/lib/approvebot"]
ENTRYPOINT ["/usr/local/bin/approvebot"]
CMD ["serve", "--config", "/etc/approvebot/approvebot.yaml"]
