# Rendered by kiln 0.1.0 (render 2) from images/python.yaml. Do not edit: change the definitions and run `invoke render`.
FROM kiln/base:508d55a7c8927b19
USER 0:0

# --- layer: python ---
ENV PYTHONDONTWRITEBYTECODE="1" PYTHONUNBUFFERED="1" PIP_NO_CACHE_DIR="1" PIP_DISABLE_PIP_VERSION_CHECK="1"
RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
      python3 python3-venv \
 && apt-get clean && rm -rf /var/lib/apt/lists/* /var/cache/apt/*.bin /var/cache/debconf/*-old /var/lib/dpkg/*-old /var/log/apt /var/log/dpkg.log /var/log/alternatives.log

# --- image configuration ---
WORKDIR /home/app
CMD ["python3"]
USER 10001:10001
LABEL dev.kiln.fingerprint="084d656d565bf72ef9fa8329607ad8a54c972c518b954c1f5a38d57c9f44c3b7" \
      dev.kiln.image="python" \
      dev.kiln.layers="minimal,core,hardening,user,python" \
      dev.kiln.version="0.1.0" \
      org.opencontainers.image.description="Python 3 runtime on the base image, running as the non-root user." \
      org.opencontainers.image.title="python" \
      org.opencontainers.image.version="3.11"
