# Rendered by kiln 0.1.0 (render 3) from images/base.yaml. Do not edit: change the definitions and run `invoke render`.
FROM kiln-bootstrap/bookworm-minbase:061826fa2cb6d104

# --- layer: minimal ---
COPY files/minimal/dpkg-nodoc.cfg /etc/dpkg/dpkg.cfg.d/90-kiln-nodoc
COPY files/minimal/apt-minimal.conf /etc/apt/apt.conf.d/90-kiln-minimal
RUN set -eu; find /usr/share/doc -mindepth 1 -not -name copyright -not -type d -delete; find /usr/share/doc -mindepth 1 -type d -empty -delete; rm -rf /usr/share/man/* /usr/share/info/* /usr/share/locale/*

# --- layer: core ---
ENV LANG="C.UTF-8" TZ="Etc/UTC"
RUN --mount=type=bind,source=debs/core,target=/tmp/kiln-debs \
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends \
      /tmp/kiln-debs/ca-certificates_20230311+deb12u1_all.deb /tmp/kiln-debs/libssl3_3.0.20-1~deb12u2_amd64.deb /tmp/kiln-debs/openssl_3.0.20-1~deb12u2_amd64.deb \
 && apt-get clean && rm -rf /var/lib/apt/lists/* /var/cache/apt/*.bin /var/cache/debconf/*-old /var/lib/dpkg/*-old /var/log/apt /var/log/dpkg.log /var/log/alternatives.log
RUN set -eu; ln -sf "/usr/share/zoneinfo/Etc/UTC" /etc/localtime && echo "Etc/UTC" > /etc/timezone

# --- layer: hardening ---
RUN --mount=type=bind,source=debs/hardening,target=/tmp/kiln-debs \
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends \
      /tmp/kiln-debs/libpam-passwdqc_2.0.2-1+b1_amd64.deb /tmp/kiln-debs/libpam-tmpdir_0.09+b2_amd64.deb /tmp/kiln-debs/libpasswdqc1_2.0.2-1+b1_amd64.deb \
 && apt-get clean && rm -rf /var/lib/apt/lists/* /var/cache/apt/*.bin /var/cache/debconf/*-old /var/lib/dpkg/*-old /var/log/apt /var/log/dpkg.log /var/log/alternatives.log
COPY files/hardening/umask.sh /etc/profile.d/kiln-umask.sh
COPY files/hardening/coredump.conf /etc/security/limits.d/kiln-coredump.conf
COPY files/hardening/shell.sh /etc/profile.d/kiln-shell.sh
COPY files/hardening/blacklist.conf /etc/modprobe.d/kiln-hardening.conf
COPY files/hardening/login-defs.sed /usr/share/kiln/login-defs.sed
RUN set -eu; sed -i -f /usr/share/kiln/login-defs.sed /etc/login.defs && rm /usr/share/kiln/login-defs.sed && rmdir --ignore-fail-on-non-empty /usr/share/kiln
RUN set -eu; printf '%s\n' "Authorized access only. This system is private; all activity is monitored and recorded, and unauthorized use is subject to criminal prosecution." > /etc/issue && cp /etc/issue /etc/issue.net
RUN set -eu; sed -i "s/@TMOUT@/900/" /etc/profile.d/kiln-shell.sh
RUN set -eu; find / -xdev -type f -perm /6000 -exec chmod a-s {} +
RUN set -eu; rm -f /etc/machine-id /var/lib/dbus/machine-id && rm -rf /var/cache/ldconfig/aux-cache /tmp/* /var/tmp/*

# --- layer: user ---
RUN groupadd --gid 10001 app \
 && useradd --no-log-init --uid 10001 --gid app --create-home --home-dir /home/app --shell /usr/sbin/nologin app

# --- image configuration ---
WORKDIR /home/app
USER 10001:10001
LABEL dev.kiln.fingerprint="8de29322f8fdefb0e0ba603aa796dce63485e9dc7d4532ab233fa9db321e5a1a" \
      dev.kiln.image="base" \
      dev.kiln.layers="minimal,core,hardening,user" \
      dev.kiln.version="0.1.0" \
      org.opencontainers.image.description="Debian bookworm with CA certificates, UTC, C.UTF-8, hardened defaults and a non-root user." \
      org.opencontainers.image.title="base" \
      org.opencontainers.image.version="12.1"
