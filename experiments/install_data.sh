#!/usr/bin/env bash
# Puts the offline datasets jssl reads on this machine (../shared/DATA.md lists them):
#   installed Debian packages: dataset-fashion-mnist (/usr/share/datasets/fashion-mnist),
#     wordnet-base (/usr/share/wordnet), fortunes + fortunes-min (/usr/share/games/fortunes),
#     fonts-noto-color-emoji + unicode-data (the colour emoji dataset, jssl.data.emoji);
#   data files only, unpacked without installing the package (which would pull in R or
#   graph-tool's libraries): r-cran-janeaustenr (the six Austen novels, R's lazy-load
#   database, read with the `rdata` package) and python3-graph-tool (its collection of
#   networks, graph_tool/collection/*.gt.gz), under $JSSL_DEBIAN_DATA
#   (default ~/.local/share/jssl/debian).
# Needs root or sudo for apt-get install. Safe to run again.
set -euo pipefail
SUDO=""
if [ "$(id -u)" -ne 0 ]; then SUDO=sudo; fi
$SUDO apt-get update -qq
$SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
  dataset-fashion-mnist wordnet-base fortunes fortunes-min fonts-noto-color-emoji unicode-data
DEST="${JSSL_DEBIAN_DATA:-$HOME/.local/share/jssl/debian}"
mkdir -p "$DEST"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
chmod 755 "$work"  # apt-get download runs as _apt
(cd "$work" && apt-get download -qq r-cran-janeaustenr python3-graph-tool)
dpkg-deb -x "$work"/r-cran-janeaustenr_*.deb "$work/austen"
dpkg-deb -x "$work"/python3-graph-tool_*.deb "$work/graph_tool"
mkdir -p "$DEST/janeaustenr" "$DEST/graph_tool_collection"
cp "$work"/austen/usr/lib/R/site-library/janeaustenr/data/Rdata.* "$DEST/janeaustenr/"
find "$work/graph_tool" -path '*graph_tool/collection/*.gt.gz' -exec cp {} "$DEST/graph_tool_collection/" \;
echo "jssl data: Debian packages installed; Austen novels and graph-tool networks in $DEST"
