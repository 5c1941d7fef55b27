"""The full example docs/definitions.md ends with: a layer and an image that use most keys.
Kept apart from the prose because tests/unit/test_docs.py loads, composes and renders it, so
the example in the reference is one that works."""

from __future__ import annotations

EXAMPLE_LAYER_NAME = "webapp"
EXAMPLE_LAYER = """\
description: A small Python web service, run as an unprivileged user.
requires: [core]          # layers/core is applied first, with what it requires
conflicts: [nginx]        # these two must not share an image
params:
  listen_port:
    type: integer
    default: 8000
    description: the port the service listens on
  service:
    type: string
    default: webapp
    description: the account (and primary group) the service runs as
packages:
  - python3
  - python3-gunicorn
  - curl=7.88.1-10+deb12u8   # pinned with name=version
groups:
  - name: "{{ service }}"
    gid: 10100
users:
  - name: "{{ service }}"
    uid: 10100
    group: "{{ service }}"
    home: /srv/webapp
files:
  - src: gunicorn.conf.py                # layers/webapp/files/gunicorn.conf.py
    dest: /etc/webapp/gunicorn.conf.py
  - src: app/                            # a whole folder
    dest: /srv/webapp/app/
    mode: "0644"
    owner: "{{ service }}:{{ service }}"
  - src: healthcheck.sh
    dest: /usr/local/bin/webapp-healthcheck
    mode: 0755                           # read as octal, quoted or not
env:
  PORT: "{{ listen_port }}"
  WEB_CONCURRENCY: "2"
run:
  - python3 -m compileall -q /srv/webapp/app
  - |
    mkdir -p /var/lib/webapp
    chown {{ service }}:{{ service }} /var/lib/webapp
workdir: /srv/webapp
user: "{{ service }}"
expose: ["{{ listen_port }}"]
volumes: [/var/lib/webapp]
entrypoint: ["gunicorn", "--config", "/etc/webapp/gunicorn.conf.py"]
cmd: ["app.wsgi:application"]
stopsignal: SIGTERM
healthcheck:
  test: ["/usr/local/bin/webapp-healthcheck"]
  interval: 15s
  retries: 5
labels:
  org.opencontainers.image.documentation: "GET /healthz on port {{ listen_port }}"
"""
EXAMPLE_LAYER_FILES: tuple[str, ...] = ("gunicorn.conf.py", "app/wsgi.py", "healthcheck.sh")

EXAMPLE_IMAGE_NAME = "webapp"
EXAMPLE_IMAGE = """\
description: The web service on a hardened Debian.
version: "1.10"            # a string: stays "1.10", never the number 1.1
base:
  bootstrap:
    suite: bookworm        # variant minbase, deb.debian.org, [main] by default
layers:
  - hardening              # brings minimal and core (its requires) before it
  - webapp
params:
  listen_port: 8080        # checked against the declaration: an integer
  timezone: Europe/Berlin  # declared by layers/core
targets: [container]
tags: [stable]
labels:
  org.opencontainers.image.vendor: Example Inc.
"""
