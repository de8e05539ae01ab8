#!/usr/bin/env bash
# Bundle every implemented function for deployment.
#
#   infra/scripts/bundle_functions.sh [REPO_ROOT] [OUT_DIR]
#
# For each functions/<name>/main.py, writes OUT_DIR/<name>/ (default build/functions/<name>/):
# the function folder (main.py, requirements.txt, ...) plus a copy of shared/ without
# shared/local and shared/simulator (local-only code, never deployed), __pycache__ and *.pyc.
# Terraform zips each bundle (archive_file) and names the object by the zip's md5, so file
# modes are normalised here: the hash then changes only when content does.
set -euo pipefail

repo="$(cd "${1:-"$(dirname "$0")/../.."}" && pwd)"
out="${2:-"$repo/build/functions"}"

if [[ ! -d "$repo/functions" || ! -d "$repo/shared" ]]; then
  echo "bundle_functions: $repo has no functions/ or shared/ folder" >&2
  exit 1
fi

rm -rf "$out"
mkdir -p "$out"

count=0
shopt -s nullglob
for main in "$repo"/functions/*/main.py; do
  src="$(dirname "$main")"
  name="$(basename "$src")"
  dest="$out/$name"
  if [[ ! -f "$src/requirements.txt" ]]; then
    echo "bundle_functions: functions/$name has no requirements.txt (Cloud Functions installs from it)" >&2
    exit 1
  fi
  mkdir -p "$dest"
  tar -C "$src" --exclude='__pycache__' --exclude='*.pyc' --exclude='.pytest_cache' -cf - . | tar -C "$dest" -xf -
  tar -C "$repo" --exclude='shared/local' --exclude='shared/simulator' \
    --exclude='__pycache__' --exclude='*.pyc' -cf - shared | tar -C "$dest" -xf -
  find "$dest" -type d -exec chmod 0755 {} +
  find "$dest" -type f -exec chmod 0644 {} +
  echo "bundled $name -> ${dest#"$repo"/}"
  count=$((count + 1))
done

if [[ $count -eq 0 ]]; then
  echo "bundle_functions: no functions/<name>/main.py found under $repo" >&2
  exit 1
fi
