# Rendered by kiln 0.1.0 (render 2) from images/base-vm.yaml. Do not edit: change the definitions and run `invoke render`.
FROM kiln/base:508d55a7c8927b19
USER 0:0

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

# --- layer: hardening-ssh ---
COPY files/hardening-ssh/sshd.conf /etc/ssh/sshd_config.d/05-kiln-hardening.conf
RUN set -eu; sed -i -e "s|@PERMIT_ROOT_LOGIN@|prohibit-password|" -e "s|@BANNER@|/etc/issue.net|" /etc/ssh/sshd_config.d/05-kiln-hardening.conf && grep -q '^Include /etc/ssh/sshd_config.d/\*.conf' /etc/ssh/sshd_config

# --- layer: hardening-vm ---
COPY files/hardening-vm/sysctl.conf /etc/sysctl.d/zz-kiln-hardening.conf
COPY files/hardening-vm/coredump.conf /etc/systemd/coredump.conf.d/kiln.conf
COPY files/hardening-vm/journald.conf /etc/systemd/journald.conf.d/kiln.conf
RUN set -eu; mkdir -p /var/log/journal

# --- image configuration ---
WORKDIR /home/app
USER 10001:10001
LABEL dev.kiln.fingerprint="d9c6f315945d3f5912e202b5c3e88df7e0a5236d8e9dae0ee56ef94342fdb030" \
      dev.kiln.image="base-vm" \
      dev.kiln.layers="minimal,core,hardening,user,vm-systemd,vm-kernel,vm-network,vm-sshd,vm,hardening-ssh,hardening-vm" \
      dev.kiln.version="0.1.0" \
      org.opencontainers.image.description="The base image as a virtual machine disk (BIOS and UEFI), from the same filesystem." \
      org.opencontainers.image.title="base-vm" \
      org.opencontainers.image.version="12.1"
