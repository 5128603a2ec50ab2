# Multi-stage build: compile in the Rust image, run as a non-root user in a slim image.
#   docker build -t ttlcask .
#   docker run -p 9001:9001 -v ttlcask-data:/var/lib/ttlcask ttlcask
FROM rust:1-bookworm AS build
WORKDIR /src
COPY . .
RUN cargo build --release --locked --bin ttlcask

FROM debian:bookworm-slim
RUN useradd --system --uid 10001 --home-dir /var/lib/ttlcask ttlcask \
    && mkdir -p /var/lib/ttlcask /etc/ttlcask \
    && chown ttlcask:ttlcask /var/lib/ttlcask
COPY --from=build /src/target/release/ttlcask /usr/local/bin/ttlcask
COPY ttlcask.toml /etc/ttlcask/ttlcask.toml
USER ttlcask
VOLUME ["/var/lib/ttlcask"]
EXPOSE 9001
ENV TTLCASK_LISTEN=0.0.0.0:9001 TTLCASK_DATA_DIR=/var/lib/ttlcask
# From outside the container the pages need the admin token (<data dir>/admin.token).
ENTRYPOINT ["/usr/local/bin/ttlcask"]
CMD ["serve", "--config", "/etc/ttlcask/ttlcask.toml"]
