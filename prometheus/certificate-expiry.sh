#!/bin/sh
# certificate-expiry: when each certificate of a host expires, as a metric
# for the node exporter's textfile collector: every *.pem of TLS_DIR but the
# keys (the CAs the host trusts, its own leaves), the earliest of a file
# that holds several (a trust file during a CA rotation). Rewritten whole,
# then renamed, so the collector never reads half a file. The exporters job
# (nomad/exporters.nomad.hcl) runs it every 5 minutes; a machine without
# TLS_DIR (the local stack) gets the header alone.
#   certificate-expiry.sh TLS_DIR OUT_FILE
set -eu
dir=$1 out=$2
mkdir -p "$(dirname "$out")"
split=$(mktemp -d)
trap 'rm -rf "$split"' EXIT
{
  echo "# HELP counter_certificate_not_after_seconds When the certificate expires (notAfter, Unix time); the earliest of a file's."
  echo "# TYPE counter_certificate_not_after_seconds gauge"
  for f in "$dir"/*.pem; do
    [ -f "$f" ] || continue
    case $f in *-key.pem) continue ;; esac
    rm -f "$split"/*
    awk -v d="$split" '/-----BEGIN CERTIFICATE-----/ { n++ } n { print > (d "/" n ".pem") }' "$f"
    earliest=
    for c in "$split"/*.pem; do
      [ -f "$c" ] || continue
      end=$(openssl x509 -noout -enddate -in "$c") || continue
      t=$(date -d "${end#notAfter=}" +%s)
      if [ -z "$earliest" ] || [ "$t" -lt "$earliest" ]; then earliest=$t; fi
    done
    if [ -n "$earliest" ]; then
      echo "counter_certificate_not_after_seconds{file=\"$(basename "$f")\"} $earliest"
    fi
  done
} > "$out.tmp"
mv "$out.tmp" "$out"
