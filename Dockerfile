# Images of mia on Debian 12, built with the project's own install script:
#   docker build -t mia-server .             the server (the default, last stage)
#   docker build --target cli -t mia .       the mia CLI
# Both run as the non-root user mia (uid/gid 10001) on OpenBLAS.
# deploy/README.md describes running the server image on Kubernetes.

# Only what building needs (--build-only): no test frameworks, Go, Node.js or
# the datasets the tests use.
FROM debian:12 AS build
WORKDIR /src
COPY scripts/install-deps.sh scripts/install-deps.sh
RUN bash scripts/install-deps.sh --build-only && rm -rf /var/lib/apt/lists/*
COPY . .
RUN cmake -S . -B /build -G Ninja -DCMAKE_BUILD_TYPE=Release -DMIA_BUILD_TESTS=OFF \
      -DMIA_BUILD_BENCH=OFF \
 && cmake --build /build --target mia mia-server

# The shared libraries both programs load (Debian 12 package names), OpenBLAS
# selected as libblas.so.3/liblapack.so.3 as scripts/install-deps.sh does
# (LibTorch otherwise runs on the reference BLAS, about 19x slower), and the
# user.
FROM debian:12-slim AS runtime
RUN apt-get update \
 && apt-get install -y --no-install-recommends \
      libabsl20220623 libfmt9 libgrpc++1.51 libgrpc29 libopenblas0-openmp \
      libprometheus-cpp-core1.0 libprometheus-cpp-pull1.0 libprotobuf32 libspdlog1.10 \
      libpq5 libsqlite3-0 libtorch1.13 libyaml-cpp0.7 zlib1g libjwt0 \
      libcurl4 ca-certificates \
 && for lib in libblas.so.3 liblapack.so.3; do \
      want=$(find /usr/lib -path "*/openblas-openmp/$lib" | head -n 1) \
      && multiarch=$(basename "$(dirname "$(dirname "$want")")") \
      && update-alternatives --set "$lib-$multiarch" "$want" \
      && readlink -f "/usr/lib/$multiarch/$lib" | grep -q openblas \
      || exit 1; \
    done \
 && rm -rf /var/lib/apt/lists/* \
 && groupadd --system --gid 10001 mia \
 && useradd --system --uid 10001 --gid 10001 --no-create-home --home-dir /nonexistent \
      --shell /usr/sbin/nologin mia

# `mia audit` runs in libmia_audit_command.so, which mia opens from
# ../lib/mia/ beside itself only for that command (the others never load
# LibTorch).
FROM runtime AS cli
COPY --from=build /build/client/mia /usr/local/bin/mia
COPY --from=build /build/client/libmia_audit_command.so /usr/local/lib/mia/libmia_audit_command.so
USER 10001:10001
WORKDIR /work
ENTRYPOINT ["mia"]
CMD ["--help"]

# The server: gRPC on 50051, Prometheus /metrics on 9090, everything it keeps
# under /var/lib/mia (mount a volume there), datasets read-only under
# /datasets. Settings from /etc/mia/config.yaml (deploy/docker/mia-server.yaml;
# replace it by mounting over /etc/mia), MIA_* variables or flags.
# SIGTERM drains within drain_timeout_seconds (30 s): give `docker stop` more
# (-t 45).
FROM runtime AS server
COPY --from=build /build/server/mia-server /usr/local/bin/mia-server
COPY deploy/docker/mia-server.yaml /etc/mia/config.yaml
RUN install -d -o 10001 -g 10001 -m 0750 /var/lib/mia \
 && install -d -m 0755 /datasets
ENV MIA_CONFIG=/etc/mia/config.yaml
EXPOSE 50051 9090
# Docker's health check (docker ps, compose's `condition: service_healthy`):
# the gRPC port of the image's config accepts connections (bash's /dev/tcp;
# the image has no gRPC client). Kubernetes ignores it and runs the native
# grpc.health.v1 probes of deploy/kubernetes instead (deploy/README.md).
HEALTHCHECK --interval=30s --timeout=5s --start-period=60s --retries=3 \
  CMD ["bash", "-c", "exec 3<>/dev/tcp/127.0.0.1/50051"]
VOLUME ["/var/lib/mia"]
USER 10001:10001
WORKDIR /var/lib/mia
ENTRYPOINT ["mia-server"]
