# Rendered by kiln 0.1.0 (render 3) from images/nginx.yaml. Do not edit: change the definitions and run `invoke render`.
FROM kiln/base:8de29322f8fdefb0
USER 0:0

# --- layer: nginx ---
RUN --mount=type=bind,source=debs/nginx,target=/tmp/kiln-debs \
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends \
      /tmp/kiln-debs/iproute2_6.1.0-3_amd64.deb /tmp/kiln-debs/libbpf1_1%3a1.1.2-0+deb12u1_amd64.deb /tmp/kiln-debs/libbsd0_0.11.7-2_amd64.deb /tmp/kiln-debs/libcap2-bin_1%3a2.66-4+deb12u3+b1_amd64.deb /tmp/kiln-debs/libelf1_0.188-2.1_amd64.deb /tmp/kiln-debs/libgssapi-krb5-2_1.20.1-2+deb12u5_amd64.deb /tmp/kiln-debs/libk5crypto3_1.20.1-2+deb12u5_amd64.deb /tmp/kiln-debs/libkeyutils1_1.6.3-2_amd64.deb /tmp/kiln-debs/libkrb5-3_1.20.1-2+deb12u5_amd64.deb /tmp/kiln-debs/libkrb5support0_1.20.1-2+deb12u5_amd64.deb /tmp/kiln-debs/libmnl0_1.0.4-3_amd64.deb /tmp/kiln-debs/libnginx-mod-http-echo_1%3a0.63-4_amd64.deb /tmp/kiln-debs/libtirpc-common_1.3.3+ds-1_all.deb /tmp/kiln-debs/libtirpc3_1.3.3+ds-1_amd64.deb /tmp/kiln-debs/libxtables12_1.8.9-2_amd64.deb /tmp/kiln-debs/nginx_1.22.1-9+deb12u9_amd64.deb /tmp/kiln-debs/nginx-common_1.22.1-9+deb12u9_all.deb /tmp/kiln-debs/nginx-light_1.22.1-9+deb12u9_all.deb \
 && apt-get clean && rm -rf /var/lib/apt/lists/* /var/cache/apt/*.bin /var/cache/debconf/*-old /var/lib/dpkg/*-old /var/log/apt /var/log/dpkg.log /var/log/alternatives.log
COPY files/nginx/nginx.conf /etc/nginx/nginx.conf
COPY files/nginx/www /srv/www/
RUN set -eu; sed -i "s/@PORT@/8080/" /etc/nginx/nginx.conf && rm -rf /etc/nginx/sites-enabled /etc/nginx/sites-available /var/www/html && nginx -t -q && rm -rf /tmp/nginx*

# --- image configuration ---
WORKDIR /home/app
EXPOSE 8080/tcp
STOPSIGNAL SIGQUIT
HEALTHCHECK --interval=10s --timeout=3s --start-period=2s --retries=3 CMD ["bash", "-c", "exec 3<>/dev/tcp/127.0.0.1/8080 && printf 'GET /healthz HTTP/1.0\\r\\n\\r\\n' >&3 && grep -q '200 OK' <&3"]
ENTRYPOINT ["nginx", "-e", "stderr", "-g", "daemon off;"]
USER 10001:10001
LABEL dev.kiln.fingerprint="bb50cce2147208cd06ce0637244340bccfc53b096515ca94c216b60ed18029d8" \
      dev.kiln.image="nginx" \
      dev.kiln.layers="minimal,core,hardening,user,nginx" \
      dev.kiln.version="0.1.0" \
      org.opencontainers.image.description="nginx web server on the base image, unprivileged, on port 8080." \
      org.opencontainers.image.documentation="nginx listens on 8080; GET /healthz answers 200" \
      org.opencontainers.image.title="nginx" \
      org.opencontainers.image.version="1.22"
