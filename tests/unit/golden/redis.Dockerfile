# Rendered by kiln 0.1.0 (render 2) from images/redis.yaml. Do not edit: change the definitions and run `invoke render`.
FROM kiln/base:d7994ed74f90fc78
USER root

# --- layer: redis ---
RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
      redis-server \
 && apt-get clean && rm -rf /var/lib/apt/lists/* /var/cache/apt/*.bin /var/cache/debconf/*-old /var/lib/dpkg/*-old /var/log/apt /var/log/dpkg.log /var/log/alternatives.log
COPY files/redis/redis.conf /etc/kiln/redis.conf
RUN set -eu; sed -i "s/@PORT@/6379/" /etc/kiln/redis.conf && install -d -o "app" -g "app" -m 0750 /data

# --- image configuration ---
WORKDIR /home/app
EXPOSE 6379/tcp
VOLUME ["/data"]
HEALTHCHECK --interval=10s --timeout=3s --start-period=2s --retries=3 CMD ["redis-cli", "-p", "6379", "ping"]
ENTRYPOINT ["redis-server", "/etc/kiln/redis.conf"]
USER app
LABEL dev.kiln.fingerprint="7c387e2b33391a36ac7e89bf42bf9a91e9cffdbbf2b021eb6ecebe8094fdfe6f" \
      dev.kiln.image="redis" \
      dev.kiln.layers="minimal,core,hardening,user,redis" \
      dev.kiln.version="0.1.0" \
      org.opencontainers.image.description="Redis on the base image, unprivileged, on port 6379, data in the /data volume." \
      org.opencontainers.image.documentation="redis on 6379, data in the /data volume" \
      org.opencontainers.image.title="redis" \
      org.opencontainers.image.version="7.0"
