# bucket-trigger for Cloud Run (or any container host): `bucket-trigger serve` takes Pub/Sub
# push and Eventarc requests on $PORT. See the README, "Google Cloud Storage pushes".
#
#   docker build -t bucket-trigger .
#   docker run --rm -p 8080:8080 -e BUCKET_TRIGGER_CONFIG="$(cat config.yaml)" bucket-trigger
#
# Build stage: the release binary (TLS roots are compiled in; no OpenSSL, no CA files needed).
FROM rust:1.95-slim-bookworm AS build
WORKDIR /src
COPY Cargo.toml Cargo.lock ./
COPY .cargo .cargo
COPY src src
COPY benches benches
COPY bench bench
RUN cargo build --release --locked --bin bucket-trigger

# Run stage: glibc and nothing else; runs as an unprivileged user.
FROM gcr.io/distroless/cc-debian12:nonroot
COPY --from=build /src/target/release/bucket-trigger /usr/local/bin/bucket-trigger
# Cloud Run sets PORT; listen on every interface of the container (the host maps the port).
ENV PORT=8080
EXPOSE 8080
ENTRYPOINT ["/usr/local/bin/bucket-trigger", "serve", "--host", "0.0.0.0"]
