# syntax=docker/dockerfile:1
# sockit in a small image: built with the official Rust image, run on
# distroless (glibc and libgcc, no shell) as a user without privilege.
#
#   docker build -t sockit .
#   docker run --rm -p 8000:8000 sockit
#   docker run --rm -p 9000:9000/udp sockit serve udp://0.0.0.0:9000

FROM rust:1-bookworm AS build
WORKDIR /src
COPY . .
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    cargo build --release --locked --bin sockit \
    && cp target/release/sockit /usr/local/bin/sockit

# Debian 12 too, so the glibc sockit was linked against is there.
FROM gcr.io/distroless/cc-debian12:nonroot
COPY --from=build /usr/local/bin/sockit /usr/local/bin/sockit
USER nonroot
# The tutorial's ports: the TCP and the UDP greeting services.
EXPOSE 8000 9000/udp
ENTRYPOINT ["/usr/local/bin/sockit"]
# In a container, listen on every address (`sockit serve` alone is 127.0.0.1).
CMD ["serve", "tcp://0.0.0.0:8000"]
