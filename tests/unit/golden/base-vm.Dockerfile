# Rendered by kiln 0.1.0 (render 3) from images/base-vm.yaml. Do not edit: change the definitions and run `invoke render`.
FROM kiln/base:8de29322f8fdefb0
USER 0:0

# --- layer: vm-systemd ---
RUN --mount=type=bind,source=debs/vm-systemd,target=/tmp/kiln-debs \
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends \
      /tmp/kiln-debs/dbus_1.14.10-1~deb12u1_amd64.deb /tmp/kiln-debs/dbus-bin_1.14.10-1~deb12u1_amd64.deb /tmp/kiln-debs/dbus-daemon_1.14.10-1~deb12u1_amd64.deb /tmp/kiln-debs/dbus-session-bus-common_1.14.10-1~deb12u1_all.deb /tmp/kiln-debs/dbus-system-bus-common_1.14.10-1~deb12u1_all.deb /tmp/kiln-debs/dmsetup_2%3a1.02.185-2_amd64.deb /tmp/kiln-debs/libapparmor1_3.0.8-3_amd64.deb /tmp/kiln-debs/libargon2-1_0~20171227-0.3+deb12u1_amd64.deb /tmp/kiln-debs/libcryptsetup12_2%3a2.6.1-4~deb12u2_amd64.deb /tmp/kiln-debs/libdbus-1-3_1.14.10-1~deb12u1_amd64.deb /tmp/kiln-debs/libdevmapper1.02.1_2%3a1.02.185-2_amd64.deb /tmp/kiln-debs/libexpat1_2.5.0-1+deb12u2_amd64.deb /tmp/kiln-debs/libfdisk1_2.38.1-5+deb12u3_amd64.deb /tmp/kiln-debs/libip4tc2_1.8.9-2_amd64.deb /tmp/kiln-debs/libjson-c5_0.16-2_amd64.deb /tmp/kiln-debs/libkmod2_30+20221128-1_amd64.deb /tmp/kiln-debs/libsystemd-shared_252.39-1~deb12u2_amd64.deb /tmp/kiln-debs/systemd_252.39-1~deb12u2_amd64.deb /tmp/kiln-debs/systemd-sysv_252.39-1~deb12u2_amd64.deb /tmp/kiln-debs/udev_252.39-1~deb12u2_amd64.deb \
 && apt-get clean && rm -rf /var/lib/apt/lists/* /var/cache/apt/*.bin /var/cache/debconf/*-old /var/lib/dpkg/*-old /var/log/apt /var/log/dpkg.log /var/log/alternatives.log
RUN set -eu; rm -f /var/lib/dbus/machine-id && echo uninitialized > /etc/machine-id && systemctl set-default multi-user.target && systemctl mask systemd-firstboot.service

# --- layer: vm-kernel ---
RUN --mount=type=bind,source=debs/vm-kernel,target=/tmp/kiln-debs \
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends \
      /tmp/kiln-debs/cpio_2.13+dfsg-7.1_amd64.deb /tmp/kiln-debs/initramfs-tools_0.142+deb12u3_all.deb /tmp/kiln-debs/initramfs-tools-core_0.142+deb12u3_all.deb /tmp/kiln-debs/klibc-utils_2.0.12-1_amd64.deb /tmp/kiln-debs/kmod_30+20221128-1_amd64.deb /tmp/kiln-debs/libklibc_2.0.12-1_amd64.deb /tmp/kiln-debs/linux-base_4.12.1~deb12u1_all.deb /tmp/kiln-debs/linux-image-6.1.0-50-cloud-amd64_6.1.176-1_amd64.deb /tmp/kiln-debs/linux-image-cloud-amd64_6.1.176-1_amd64.deb /tmp/kiln-debs/zstd_1.5.4+dfsg2-5_amd64.deb \
 && apt-get clean && rm -rf /var/lib/apt/lists/* /var/cache/apt/*.bin /var/cache/debconf/*-old /var/lib/dpkg/*-old /var/log/apt /var/log/dpkg.log /var/log/alternatives.log
COPY files/vm-kernel/initramfs.conf /etc/initramfs-tools/conf.d/kiln.conf
RUN set -eu; SOURCE_DATE_EPOCH=315532800 update-initramfs -u -k all && rm -f /boot/*.old-dkms /var/lib/initramfs-tools/*.bak

# --- layer: vm-network ---
RUN --mount=type=bind,source=debs/vm-network,target=/tmp/kiln-debs \
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends \
      /tmp/kiln-debs/iproute2_6.1.0-3_amd64.deb /tmp/kiln-debs/libbpf1_1%3a1.1.2-0+deb12u1_amd64.deb /tmp/kiln-debs/libbsd0_0.11.7-2_amd64.deb /tmp/kiln-debs/libcap2-bin_1%3a2.66-4+deb12u3+b1_amd64.deb /tmp/kiln-debs/libelf1_0.188-2.1_amd64.deb /tmp/kiln-debs/libgssapi-krb5-2_1.20.1-2+deb12u5_amd64.deb /tmp/kiln-debs/libk5crypto3_1.20.1-2+deb12u5_amd64.deb /tmp/kiln-debs/libkeyutils1_1.6.3-2_amd64.deb /tmp/kiln-debs/libkrb5-3_1.20.1-2+deb12u5_amd64.deb /tmp/kiln-debs/libkrb5support0_1.20.1-2+deb12u5_amd64.deb /tmp/kiln-debs/libmnl0_1.0.4-3_amd64.deb /tmp/kiln-debs/libtirpc-common_1.3.3+ds-1_all.deb /tmp/kiln-debs/libtirpc3_1.3.3+ds-1_amd64.deb /tmp/kiln-debs/libxtables12_1.8.9-2_amd64.deb /tmp/kiln-debs/systemd-resolved_252.39-1~deb12u2_amd64.deb \
 && apt-get clean && rm -rf /var/lib/apt/lists/* /var/cache/apt/*.bin /var/cache/debconf/*-old /var/lib/dpkg/*-old /var/log/apt /var/log/dpkg.log /var/log/alternatives.log
COPY files/vm-network/80-kiln-dhcp.network /etc/systemd/network/80-kiln-dhcp.network
COPY files/vm-network/wait-online.conf /etc/systemd/system/systemd-networkd-wait-online.service.d/kiln-any.conf
RUN set -eu; systemctl enable systemd-networkd.service systemd-resolved.service

# --- layer: vm-sshd ---
RUN --mount=type=bind,source=debs/vm-sshd,target=/tmp/kiln-debs \
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends \
      /tmp/kiln-debs/libcbor0.8_0.8.0-2+b1_amd64.deb /tmp/kiln-debs/libedit2_3.1-20221030-2_amd64.deb /tmp/kiln-debs/libfido2-1_1.12.0-2+b1_amd64.deb /tmp/kiln-debs/libncursesw6_6.4-4_amd64.deb /tmp/kiln-debs/libnsl2_1.3.0-2_amd64.deb /tmp/kiln-debs/libproc2-0_2%3a4.0.2-3_amd64.deb /tmp/kiln-debs/libwrap0_7.6.q-32_amd64.deb /tmp/kiln-debs/openssh-client_1%3a9.2p1-2+deb12u10_amd64.deb /tmp/kiln-debs/openssh-server_1%3a9.2p1-2+deb12u10_amd64.deb /tmp/kiln-debs/openssh-sftp-server_1%3a9.2p1-2+deb12u10_amd64.deb /tmp/kiln-debs/procps_2%3a4.0.2-3_amd64.deb /tmp/kiln-debs/runit-helper_2.15.2_all.deb /tmp/kiln-debs/sensible-utils_0.0.17+nmu1_all.deb /tmp/kiln-debs/ucf_3.0043+nmu1+deb12u1_all.deb \
 && apt-get clean && rm -rf /var/lib/apt/lists/* /var/cache/apt/*.bin /var/cache/debconf/*-old /var/lib/dpkg/*-old /var/log/apt /var/log/dpkg.log /var/log/alternatives.log
COPY files/vm-sshd/kiln.conf /etc/ssh/sshd_config.d/kiln.conf
COPY files/vm-sshd/hostkeys.conf /etc/systemd/system/ssh.service.d/kiln-hostkeys.conf
RUN set -eu; rm -f /etc/ssh/ssh_host_* && systemctl enable ssh.service

# --- layer: vm ---
RUN set -eu; find / -xdev -type f -perm /6000 -exec chmod a-s {} +

# --- layer: cloud-init ---
RUN --mount=type=bind,source=debs/cloud-init,target=/tmp/kiln-debs \
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends \
      /tmp/kiln-debs/cloud-guest-utils_0.33-1_all.deb /tmp/kiln-debs/cloud-init_22.4.2-1+deb12u4_all.deb /tmp/kiln-debs/eject_2.38.1-5+deb12u3_amd64.deb /tmp/kiln-debs/fdisk_2.38.1-5+deb12u3_amd64.deb /tmp/kiln-debs/gdisk_1.0.9-2.1_amd64.deb /tmp/kiln-debs/isc-dhcp-client_4.4.3-P1-2_amd64.deb /tmp/kiln-debs/libc-l10n_2.36-9+deb12u14_all.deb /tmp/kiln-debs/libpopt0_1.19+dfsg-1_amd64.deb /tmp/kiln-debs/libpython3-stdlib_3.11.2-1+b1_amd64.deb /tmp/kiln-debs/libpython3.11-minimal_3.11.2-6+deb12u8_amd64.deb /tmp/kiln-debs/libpython3.11-stdlib_3.11.2-6+deb12u8_amd64.deb /tmp/kiln-debs/libreadline8_8.2-1.3_amd64.deb /tmp/kiln-debs/libsqlite3-0_3.40.1-2+deb12u2_amd64.deb /tmp/kiln-debs/libyaml-0-2_0.2.5-1_amd64.deb /tmp/kiln-debs/locales_2.36-9+deb12u14_all.deb /tmp/kiln-debs/lsb-release_12.0-1_all.deb /tmp/kiln-debs/media-types_10.0.0_all.deb /tmp/kiln-debs/python3_3.11.2-1+b1_amd64.deb /tmp/kiln-debs/python3-attr_22.2.0-1_all.deb /tmp/kiln-debs/python3-blinker_1.5-1_all.deb /tmp/kiln-debs/python3-certifi_2022.9.24-1_all.deb /tmp/kiln-debs/python3-cffi-backend_1.15.1-5+b1_amd64.deb /tmp/kiln-debs/python3-chardet_5.1.0+dfsg-2_all.deb /tmp/kiln-debs/python3-charset-normalizer_3.0.1-2_all.deb /tmp/kiln-debs/python3-configobj_5.0.8-1_all.deb /tmp/kiln-debs/python3-cryptography_38.0.4-3+deb12u1_amd64.deb /tmp/kiln-debs/python3-idna_3.3-1+deb12u1_all.deb /tmp/kiln-debs/python3-jinja2_3.1.2-1+deb12u3_all.deb /tmp/kiln-debs/python3-json-pointer_2.3-2_all.deb /tmp/kiln-debs/python3-jsonpatch_1.32-2_all.deb /tmp/kiln-debs/python3-jsonschema_4.10.3-1_all.deb /tmp/kiln-debs/python3-jwt_2.6.0-1+deb12u1_all.deb /tmp/kiln-debs/python3-markupsafe_2.1.2-1+b1_amd64.deb /tmp/kiln-debs/python3-minimal_3.11.2-1+b1_amd64.deb /tmp/kiln-debs/python3-netifaces_0.11.0-2+b1_amd64.deb /tmp/kiln-debs/python3-oauthlib_3.2.2-1_all.deb /tmp/kiln-debs/python3-pkg-resources_66.1.1-1+deb12u2_all.deb /tmp/kiln-debs/python3-pyrsistent_0.18.1-1+b3_amd64.deb /tmp/kiln-debs/python3-requests_2.28.1+dfsg-1_all.deb /tmp/kiln-debs/python3-serial_3.5-1.1_all.deb /tmp/kiln-debs/python3-six_1.16.0-4_all.deb /tmp/kiln-debs/python3-urllib3_1.26.12-1+deb12u4_all.deb /tmp/kiln-debs/python3-yaml_6.0-3+b2_amd64.deb /tmp/kiln-debs/python3.11_3.11.2-6+deb12u8_amd64.deb /tmp/kiln-debs/python3.11-minimal_3.11.2-6+deb12u8_amd64.deb /tmp/kiln-debs/readline-common_8.2-1.3_all.deb /tmp/kiln-debs/sudo_1.9.13p3-1+deb12u4_amd64.deb \
 && apt-get clean && rm -rf /var/lib/apt/lists/* /var/cache/apt/*.bin /var/cache/debconf/*-old /var/lib/dpkg/*-old /var/log/apt /var/log/dpkg.log /var/log/alternatives.log
COPY files/cloud-init/kiln.cfg /etc/cloud/cloud.cfg.d/90-kiln.cfg
COPY files/cloud-init/ds-identify.cfg /etc/cloud/ds-identify.cfg
RUN set -eu; python3 -m compileall -q -f -j 0 --invalidation-mode checked-hash /usr/lib/python3/dist-packages /usr/lib/python3.11 >/dev/null
RUN set -eu; rm -rf /var/lib/cloud/* /var/log/cloud-init*.log
RUN set -eu; install -d -m 700 /root/.ssh && install -m 600 /dev/null /root/.ssh/authorized_keys
RUN set -eu; find / -xdev -type f -perm /6000 -exec chmod a-s {} +

# --- layer: hardening-ssh ---
COPY files/hardening-ssh/sshd.conf /etc/ssh/sshd_config.d/05-kiln-hardening.conf
RUN set -eu; sed -i -e "s|@PERMIT_ROOT_LOGIN@|no|" -e "s|@BANNER@|/etc/issue.net|" /etc/ssh/sshd_config.d/05-kiln-hardening.conf && grep -q '^Include /etc/ssh/sshd_config.d/\*.conf' /etc/ssh/sshd_config

# --- layer: hardening-vm ---
RUN --mount=type=bind,source=debs/hardening-vm,target=/tmp/kiln-debs \
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends \
      /tmp/kiln-debs/auditd_1%3a3.0.9-1_amd64.deb /tmp/kiln-debs/libauparse0_1%3a3.0.9-1_amd64.deb /tmp/kiln-debs/libglib2.0-0_2.74.6-2+deb12u9_amd64.deb /tmp/kiln-debs/libpcap0.8_1.10.3-1_amd64.deb /tmp/kiln-debs/libpolkit-gobject-1-0_122-3_amd64.deb /tmp/kiln-debs/libprotobuf32_3.21.12-3+deb12u1_amd64.deb /tmp/kiln-debs/libqb100_2.0.6-2_amd64.deb /tmp/kiln-debs/libsodium23_1.0.18-1+deb12u1_amd64.deb /tmp/kiln-debs/libumockdev0_0.17.16-1_amd64.deb /tmp/kiln-debs/libusbguard1_1.1.2+ds-3+b1_amd64.deb /tmp/kiln-debs/usbguard_1.1.2+ds-3+b1_amd64.deb \
 && apt-get clean && rm -rf /var/lib/apt/lists/* /var/cache/apt/*.bin /var/cache/debconf/*-old /var/lib/dpkg/*-old /var/log/apt /var/log/dpkg.log /var/log/alternatives.log
COPY files/hardening-vm/sysctl.conf /etc/sysctl.d/zz-kiln-hardening.conf
COPY files/hardening-vm/coredump.conf /etc/systemd/coredump.conf.d/kiln.conf
COPY files/hardening-vm/journald.conf /etc/systemd/journald.conf.d/kiln.conf
COPY files/hardening-vm/audit.rules /etc/audit/rules.d/kiln.rules
COPY files/hardening-vm/usbguard.sed /usr/share/kiln/usbguard.sed
COPY files/hardening-vm/usbguard-rules.conf /etc/usbguard/rules.conf
COPY files/hardening-vm/usbguard-service.conf /etc/systemd/system/usbguard.service.d/kiln.conf
COPY files/hardening-vm/tmp.mount /etc/systemd/system/tmp.mount
RUN set -eu; mkdir -p /var/log/journal
RUN set -eu; sed -i -f /usr/share/kiln/usbguard.sed /etc/usbguard/usbguard-daemon.conf && rm /usr/share/kiln/usbguard.sed && rmdir --ignore-fail-on-non-empty /usr/share/kiln
RUN set -eu; augenrules && rm -f /etc/audit/audit.rules.prev
RUN set -eu; systemctl enable auditd.service usbguard.service tmp.mount && systemctl disable usbguard-dbus.service && systemctl mask usbguard-dbus.service

# --- image configuration ---
WORKDIR /home/app
USER 10001:10001
LABEL dev.kiln.fingerprint="a9fe9c2f8afbe55a357d234cf5023882327c55f0cd26bc1123184e9b00add729" \
      dev.kiln.image="base-vm" \
      dev.kiln.layers="minimal,core,hardening,user,vm-systemd,vm-kernel,vm-network,vm-sshd,vm,cloud-init,hardening-ssh,hardening-vm" \
      dev.kiln.version="0.1.0" \
      org.opencontainers.image.description="The base image as a virtual machine disk (BIOS and UEFI), from the same filesystem." \
      org.opencontainers.image.title="base-vm" \
      org.opencontainers.image.version="12.1"
