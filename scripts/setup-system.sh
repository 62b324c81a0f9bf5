#!/usr/bin/env bash
# Install what the machine lacks that the project needs, outside Python:
#   - always: a Java runtime for the Pub/Sub emulator (Debian's default-jre-headless);
#   - `chromium`: Debian's Chromium for the browser tests;
#   - `node`: Debian's nodejs and npm for the JS client;
#   - always checked, never installed: terraform (not a Debian package; the offline checks need it).
# As root this installs with apt-get (or with sudo when allowed); otherwise it names, in one
# line, what to ask an administrator for. Idempotent: it does nothing when everything is present.
set -euo pipefail

missing=()
command -v java >/dev/null 2>&1 || missing+=(default-jre-headless)
for extra in "$@"; do
  case "$extra" in
    chromium) command -v chromium >/dev/null 2>&1 || missing+=(chromium) ;;
    node)
      command -v node >/dev/null 2>&1 || missing+=(nodejs)
      command -v npm >/dev/null 2>&1 || missing+=(npm)
      ;;
    *) echo "setup-system: unknown component $extra" >&2; exit 2 ;;
  esac
done

if ! command -v terraform >/dev/null 2>&1; then
  echo "setup-system: terraform is missing (not in Debian): install Terraform 1.11 from https://developer.hashicorp.com/terraform/install; the offline Terraform checks of make test need it" >&2
fi

if [ ${#missing[@]} -eq 0 ]; then
  exit 0
fi

if [ "$(id -u)" -eq 0 ] && command -v apt-get >/dev/null 2>&1; then
  echo "setup-system: installing ${missing[*]}" >&2
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq >/dev/null
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
elif command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then
  echo "setup-system: installing ${missing[*]} with sudo" >&2
  sudo -n env DEBIAN_FRONTEND=noninteractive apt-get update -qq >/dev/null
  sudo -n env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
else
  echo "setup-system: missing ${missing[*]}; ask an administrator to run: apt-get install -y ${missing[*]}" >&2
fi
