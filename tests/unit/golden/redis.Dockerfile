# Rendered by kiln 0.1.0 (render 3) from images/redis.yaml. Do not edit: change the definitions and run `invoke render`.
FROM kiln/base:8de29322f8fdefb0
USER 0:0

# --- layer: redis ---
RUN --mount=type=bind,source=debs/redis,target=/tmp/kiln-debs \
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends \
      /tmp/kiln-debs/libatomic1_12.2.0-14+deb12u1_amd64.deb /tmp/kiln-debs/libjemalloc2_5.3.0-1_amd64.deb /tmp/kiln-debs/liblzf1_3.6-3_amd64.deb /tmp/kiln-debs/redis-server_5%3a7.0.15-1~deb12u7_amd64.deb /tmp/kiln-debs/redis-tools_5%3a7.0.15-1~deb12u7_amd64.deb \
 && apt-get clean && rm -rf /var/lib/apt/lists/* /var/cache/apt/*.bin /var/cache/debconf/*-old /var/lib/dpkg/*-old /var/log/apt /var/log/dpkg.log /var/log/alternatives.log
COPY files/redis/redis.conf /etc/kiln/redis.conf
RUN set -eu; sed -i "s/@PORT@/6379/" /etc/kiln/redis.conf && install -d -o "app" -g "app" -m 0750 /data

# --- image configuration ---
WORKDIR /home/app
EXPOSE 6379/tcp
VOLUME ["/data"]
HEALTHCHECK --interval=10s --timeout=3s --start-period=2s --retries=3 CMD ["redis-cli", "-p", "6379", "ping"]
ENTRYPOINT ["redis-server", "/etc/kiln/redis.conf"]
USER 10001:10001
LABEL dev.kiln.fingerprint="f97a382f4392c041937a90f90381e6708f8d4a4216df00a4ef06e7aae7c2314a" \
      dev.kiln.image="redis" \
      dev.kiln.layers="minimal,core,hardening,user,redis" \
      dev.kiln.version="0.1.0" \
      org.opencontainers.image.description="Redis on the base image, unprivileged, on port 6379, data in the /data volume." \
      org.opencontainers.image.documentation="redis on 6379, data in the /data volume" \
      org.opencontainers.image.title="redis" \
      org.opencontainers.image.version="7.0"
