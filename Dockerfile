# Builds the mia CLI on Debian 12 with the project's own install script, and
# ships it in a slim runtime image. (The server image comes with mia-server.)
FROM debian:12 AS build
WORKDIR /src
COPY scripts/install-deps.sh scripts/install-deps.sh
RUN bash scripts/install-deps.sh && rm -rf /var/lib/apt/lists/*
COPY . .
RUN cmake -S . -B /build -G Ninja -DCMAKE_BUILD_TYPE=Release -DMIA_BUILD_TESTS=OFF \
      -DMIA_BUILD_BENCH=OFF \
 && cmake --build /build --target mia

FROM debian:12-slim
RUN apt-get update \
 && apt-get install -y --no-install-recommends libabsl20220623 zlib1g \
 && rm -rf /var/lib/apt/lists/*
COPY --from=build /build/client/mia /usr/local/bin/mia
RUN useradd --system --uid 10001 mia
USER mia
WORKDIR /work
ENTRYPOINT ["mia"]
CMD ["--help"]
