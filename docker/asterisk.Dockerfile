# Asterisk 22 (Debian sid package) with cti-bridge's PBX configuration.
# Build from the repository root: docker build -f docker/asterisk.Dockerfile .
# The test suite runs the same package and the same files in a chroot instead
# (scripts/asterisk-root, src/cti_bridge/testing/asterisk.py).
FROM debian:sid-slim

RUN apt-get update \
    && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
        asterisk asterisk-modules \
    && rm -rf /var/lib/apt/lists/*

# Defaults baked in; docker-compose.yml mounts the working copies over them (read-only).
COPY config/asterisk/ /etc/cti-bridge/asterisk/
COPY dialplans/ /etc/cti-bridge/dialplans/
COPY docker/asterisk-entrypoint.sh /usr/local/bin/asterisk-entrypoint

# AMI stays on 127.0.0.1 (manager.conf): cti-bridge joins this container's network
# namespace instead of reaching AMI over a network.
HEALTHCHECK --interval=10s --timeout=5s --start-period=20s --retries=3 \
    CMD asterisk -rx "core waitfullybooted" >/dev/null || exit 1

ENTRYPOINT ["/usr/local/bin/asterisk-entrypoint"]
