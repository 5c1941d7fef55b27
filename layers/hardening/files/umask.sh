# Installed by kiln's `hardening` layer: files are not world-readable unless asked for.
umask 027
