#!/bin/sh
# gateway-address: whether this host holds the cluster's floating gateway
# address (keepalived moves it between the hosts: deploy/roles/gateway_vip),
# as a metric for the node exporter's textfile collector: the dashboard's
# Machines table names the holder. Written whole, then renamed, so the
# collector never reads half a file. The exporters job
# (nomad/exporters.nomad.hcl) runs it every 2 seconds on a cluster that has
# the address.
#   gateway-address.sh ADDRESS OUT_FILE
set -eu
addr=$1 out=$2
mkdir -p "$(dirname "$out")"
held=0
# `ip -o` prints one address a line: "2: eth0    inet 198.18.0.100/24 ...".
if ip -o -4 addr show | grep -qF " $addr/"; then held=1; fi
{
  echo "# HELP counter_gateway_address_held 1 while this host holds the floating gateway address, else 0."
  echo "# TYPE counter_gateway_address_held gauge"
  echo "counter_gateway_address_held{address=\"$addr\"} $held"
} > "$out.tmp"
mv "$out.tmp" "$out"
