#!/usr/bin/env bash
# Runs a command (an apt-get install) with Debian's policy-rc.d set to refuse
# service starts, so that installing mariadb-server or rabbitmq-server does not
# start system-wide daemons, then removes that policy-rc.d again: left behind,
# it blocks every later service start on the host.
#
#   scripts/without-service-starts.sh apt-get install -y mariadb-server
#
# A policy-rc.d that already exists is someone else's: it is used as it is and
# never removed. The exit status is the command's.
set -euo pipefail

POLICY=${PAYFLOW_POLICY_RC_D:-/usr/sbin/policy-rc.d}

(($#)) || { echo "usage: $0 command [args...]" >&2; exit 2; }

created=
cleanup() { if [[ -n $created ]]; then rm -f "$POLICY"; fi; }
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# noclobber makes the creation fail, rather than overwrite, if the file exists
# (also if it appeared between a test and the write).
if (set -o noclobber; printf '#!/bin/sh\n# written by payflow scripts/without-service-starts.sh; removed when it ends\nexit 101\n' >"$POLICY") 2>/dev/null; then
  created=1
  chmod +x "$POLICY"
elif [[ ! -e $POLICY ]]; then
  echo "$0: cannot write $POLICY" >&2
  exit 1
fi

"$@"
