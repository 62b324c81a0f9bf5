#!/usr/bin/env bash
# Install what the machine lacks that the project needs, outside Python:
#   - a Java runtime for the Pub/Sub emulator (Debian's default-jre-headless);
#   - with the argument `chromium`: Debian's Chromium for the browser tests;
# As root this installs with apt-get; as an ordinary user it says what to ask an admin for.
# Idempotent: it does nothing when everything is present.
set -euo pipefail

missing=()
command -v java >/dev/null 2>&1 || missing+=(default-jre-headless)
for extra in "$@"; do
  case "$extra" in
    chromium) command -v chromium >/dev/null 2>&1 || missing+=(chromium) ;;
    *) echo "setup-system: unknown component $extra" >&2; exit 2 ;;
  esac
done

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
  echo "setup-system: missing ${missing[*]}; ask an administrator to run:" >&2
  echo "  apt-get install -y ${missing[*]}" >&2
  echo "  (\`telemetry dev\` will name what it cannot start without them)" >&2
fi
