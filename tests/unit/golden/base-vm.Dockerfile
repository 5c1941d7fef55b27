# Rendered by kiln 0.1.0 (render 2) from images/base-vm.yaml. Do not edit: change the definitions and run `invoke render`.
FROM kiln/base:d7994ed74f90fc78
USER root

# --- layer: vm-systemd ---
RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
      systemd systemd-sysv udev dbus \
 && apt-get clean && rm -rf /var/lib/apt/lists/* /var/cache/apt/*.bin /var/cache/debconf/*-old /var/lib/dpkg/*-old /var/log/apt /var/log/dpkg.log /var/log/alternatives.log
RUN set -eu; rm -f /var/lib/dbus/machine-id && echo uninitialized > /etc/machine-id && systemctl set-default multi-user.target && systemctl mask systemd-firstboot.service

# --- layer: vm-kernel ---
RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
      linux-image-cloud-amd64 initramfs-tools zstd \
 && apt-get clean && rm -rf /var/lib/apt/lists/* /var/cache/apt/*.bin /var/cache/debconf/*-old /var/lib/dpkg/*-old /var/log/apt /var/log/dpkg.log /var/log/alternatives.log
COPY files/vm-kernel/initramfs.conf /etc/initramfs-tools/conf.d/kiln.conf
RUN set -eu; SOURCE_DATE_EPOCH=315532800 update-initramfs -u -k all && rm -f /boot/*.old-dkms /var/lib/initramfs-tools/*.bak

# --- layer: vm-network ---
RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
      systemd-resolved iproute2 \
 && apt-get clean && rm -rf /var/lib/apt/lists/* /var/cache/apt/*.bin /var/cache/debconf/*-old /var/lib/dpkg/*-old /var/log/apt /var/log/dpkg.log /var/log/alternatives.log
COPY files/vm-network/80-kiln-dhcp.network /etc/systemd/network/80-kiln-dhcp.network
COPY files/vm-network/wait-online.conf /etc/systemd/system/systemd-networkd-wait-online.service.d/kiln-any.conf
RUN set -eu; systemctl enable systemd-networkd.service systemd-resolved.service

# --- layer: vm-sshd ---
RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
      openssh-server \
 && apt-get clean && rm -rf /var/lib/apt/lists/* /var/cache/apt/*.bin /var/cache/debconf/*-old /var/lib/dpkg/*-old /var/log/apt /var/log/dpkg.log /var/log/alternatives.log
COPY files/vm-sshd/kiln.conf /etc/ssh/sshd_config.d/kiln.conf
COPY files/vm-sshd/hostkeys.conf /etc/systemd/system/ssh.service.d/kiln-hostkeys.conf
RUN set -eu; rm -f /etc/ssh/ssh_host_* && systemctl enable ssh.service

# --- layer: vm ---
RUN set -eu; find / -xdev -type f -perm /6000 -exec chmod a-s {} +

# --- layer: cloud-init ---
RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
      cloud-init cloud-guest-utils e2fsprogs \
 && apt-get clean && rm -rf /var/lib/apt/lists/* /var/cache/apt/*.bin /var/cache/debconf/*-old /var/lib/dpkg/*-old /var/log/apt /var/log/dpkg.log /var/log/alternatives.log
COPY files/cloud-init/kiln.cfg /etc/cloud/cloud.cfg.d/90-kiln.cfg
COPY files/cloud-init/ds-identify.cfg /etc/cloud/ds-identify.cfg
RUN set -eu; python3 -m compileall -q -f -j 0 --invalidation-mode checked-hash /usr/lib/python3/dist-packages /usr/lib/python3.11 >/dev/null
RUN set -eu; rm -rf /var/lib/cloud/* /var/log/cloud-init*.log

# --- image configuration ---
WORKDIR /home/app
USER app
LABEL dev.kiln.fingerprint="fb49de25e407ff66ef4cc7530dcd695630d13d761f00b9f8a86534208d4db750" \
      dev.kiln.image="base-vm" \
      dev.kiln.layers="minimal,core,hardening,user,vm-systemd,vm-kernel,vm-network,vm-sshd,vm,cloud-init" \
      dev.kiln.version="0.1.0" \
      org.opencontainers.image.description="The base image as a virtual machine disk (BIOS and UEFI), from the same filesystem." \
      org.opencontainers.image.title="base-vm" \
      org.opencontainers.image.version="12.1"
