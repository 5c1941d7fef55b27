# Rendered by kiln 0.1.0 (render 3) from images/python.yaml. Do not edit: change the definitions and run `invoke render`.
FROM kiln/base:8de29322f8fdefb0
USER 0:0

# --- layer: python ---
ENV PYTHONDONTWRITEBYTECODE="1" PYTHONUNBUFFERED="1" PIP_NO_CACHE_DIR="1" PIP_DISABLE_PIP_VERSION_CHECK="1"
RUN --mount=type=bind,source=debs/python,target=/tmp/kiln-debs \
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends \
      /tmp/kiln-debs/libexpat1_2.5.0-1+deb12u2_amd64.deb /tmp/kiln-debs/libgssapi-krb5-2_1.20.1-2+deb12u5_amd64.deb /tmp/kiln-debs/libk5crypto3_1.20.1-2+deb12u5_amd64.deb /tmp/kiln-debs/libkeyutils1_1.6.3-2_amd64.deb /tmp/kiln-debs/libkrb5-3_1.20.1-2+deb12u5_amd64.deb /tmp/kiln-debs/libkrb5support0_1.20.1-2+deb12u5_amd64.deb /tmp/kiln-debs/libncursesw6_6.4-4_amd64.deb /tmp/kiln-debs/libnsl2_1.3.0-2_amd64.deb /tmp/kiln-debs/libpython3-stdlib_3.11.2-1+b1_amd64.deb /tmp/kiln-debs/libpython3.11-minimal_3.11.2-6+deb12u8_amd64.deb /tmp/kiln-debs/libpython3.11-stdlib_3.11.2-6+deb12u8_amd64.deb /tmp/kiln-debs/libreadline8_8.2-1.3_amd64.deb /tmp/kiln-debs/libsqlite3-0_3.40.1-2+deb12u2_amd64.deb /tmp/kiln-debs/libtirpc-common_1.3.3+ds-1_all.deb /tmp/kiln-debs/libtirpc3_1.3.3+ds-1_amd64.deb /tmp/kiln-debs/media-types_10.0.0_all.deb /tmp/kiln-debs/python3_3.11.2-1+b1_amd64.deb /tmp/kiln-debs/python3-distutils_3.11.2-3_all.deb /tmp/kiln-debs/python3-lib2to3_3.11.2-3_all.deb /tmp/kiln-debs/python3-minimal_3.11.2-1+b1_amd64.deb /tmp/kiln-debs/python3-pip-whl_23.0.1+dfsg-1_all.deb /tmp/kiln-debs/python3-setuptools-whl_66.1.1-1+deb12u2_all.deb /tmp/kiln-debs/python3-venv_3.11.2-1+b1_amd64.deb /tmp/kiln-debs/python3.11_3.11.2-6+deb12u8_amd64.deb /tmp/kiln-debs/python3.11-minimal_3.11.2-6+deb12u8_amd64.deb /tmp/kiln-debs/python3.11-venv_3.11.2-6+deb12u8_amd64.deb /tmp/kiln-debs/readline-common_8.2-1.3_all.deb \
 && apt-get clean && rm -rf /var/lib/apt/lists/* /var/cache/apt/*.bin /var/cache/debconf/*-old /var/lib/dpkg/*-old /var/log/apt /var/log/dpkg.log /var/log/alternatives.log

# --- image configuration ---
WORKDIR /home/app
CMD ["python3"]
USER 10001:10001
LABEL dev.kiln.fingerprint="90522990b72ad5d9b992b1ba45cb9587f8093d8d740b4a39043e71af28e06dd8" \
      dev.kiln.image="python" \
      dev.kiln.layers="minimal,core,hardening,user,python" \
      dev.kiln.version="0.1.0" \
      org.opencontainers.image.description="Python 3 runtime on the base image, running as the non-root user." \
      org.opencontainers.image.title="python" \
      org.opencontainers.image.version="3.11"
