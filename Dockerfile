# ordo-node in a container: one node per container, configured by a mounted TOML file.
#
#   docker build -t ordo-node .
#   docker run --rm -p 7001:7001 ordo-node                     # single node, embedded default
#   docker run --rm -v $PWD/node1.toml:/etc/ordo/node.toml ordo-node run --config /etc/ordo/node.toml
#
# The generated gRPC code is committed (ordo_node/pb), so the build needs no protoc step.

FROM python:3.11-slim AS build
WORKDIR /src
COPY pyproject.toml README.md ./
COPY proto ./proto
COPY ordo_node ./ordo_node
RUN pip wheel --no-cache-dir --wheel-dir /wheels .

FROM python:3.11-slim
RUN useradd --create-home --uid 10001 ordo && mkdir -p /data /etc/ordo && chown ordo /data
COPY --from=build /wheels /wheels
RUN pip install --no-cache-dir /wheels/*.whl && rm -rf /wheels
USER ordo
WORKDIR /data
EXPOSE 7001 7101
VOLUME ["/data"]
# The gRPC health service answers SERVING once the node is up; with a mounted config the check
# takes the node's address and TLS files from it.
HEALTHCHECK --interval=10s --timeout=5s --start-period=10s --retries=3 CMD \
  if [ -f /etc/ordo/node.toml ]; then ordo-node health --config /etc/ordo/node.toml; \
  else ordo-node health --address 127.0.0.1:7001; fi
ENTRYPOINT ["ordo-node"]
# Without a config: a single node on 0.0.0.0:7001 with its data in /data.
CMD ["run", "--data-dir", "/data", "--grpc-address", "0.0.0.0:7001", "--raft-address", "127.0.0.1:7101"]
