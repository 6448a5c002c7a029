#!/bin/sh
# Assembles /etc/asterisk from cti-bridge's files, the way the test harness does per
# instance, then runs Asterisk in the foreground as the "asterisk" user.
#
#   /etc/cti-bridge/asterisk/   config/asterisk/ of the repository
#   /etc/cti-bridge/dialplans/  dialplans/ of the repository
#   CTI_AMI_SECRET              secret of the AMI user "cti" (required)
#   CTI_AMI_WRITE               its write classes (default: what cti-bridge sends,
#                               call,reporting,agent,originate; see docs/security.md)
set -eu

if [ -z "${CTI_AMI_SECRET:-}" ]; then
    echo "asterisk-entrypoint: CTI_AMI_SECRET is not set" >&2
    exit 1
fi
case "$CTI_AMI_SECRET" in
    *[!A-Za-z0-9_.+/=-]*)
        echo "asterisk-entrypoint: CTI_AMI_SECRET may hold only A-Z a-z 0-9 _ . + / = -" >&2
        exit 1 ;;
esac

# The lab's manager.conf gives "cti" write = all (the test harness runs CLI commands
# through it); a running site gets the least cti-bridge needs.
CTI_AMI_WRITE="${CTI_AMI_WRITE:-call,reporting,agent,originate}"
case "$CTI_AMI_WRITE" in
    *[!a-z,]*|"")
        echo "asterisk-entrypoint: CTI_AMI_WRITE may hold only a-z and commas" >&2
        exit 1 ;;
esac

# Only our files: Debian's sample configs would add demo contexts and voicemail boxes.
rm -rf /etc/asterisk
mkdir -p /etc/asterisk/dialplans
cp /etc/cti-bridge/asterisk/*.conf /etc/asterisk/
cp /etc/cti-bridge/dialplans/*.conf /etc/asterisk/dialplans/
if [ -d /etc/cti-bridge/dialplans/agi ]; then
    mkdir -p /usr/share/asterisk/agi-bin
    cp -r /etc/cti-bridge/dialplans/agi/. /usr/share/asterisk/agi-bin/
fi
sed -i "s/^write = all\$/write = $CTI_AMI_WRITE/" /etc/asterisk/manager.conf
umask 027
printf 'secret = %s\n' "$CTI_AMI_SECRET" >/etc/asterisk/manager-cti-secret.conf
chown -R root:asterisk /etc/asterisk
chmod -R g+rX /etc/asterisk

install -d -o asterisk -g asterisk /run/asterisk /var/log/asterisk /var/spool/asterisk \
    /var/lib/asterisk
exec /usr/sbin/asterisk -f -n -U asterisk -G asterisk "$@"
