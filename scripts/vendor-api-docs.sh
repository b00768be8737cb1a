#!/usr/bin/env bash
# The API docs' browser assets (Swagger UI for /docs, ReDoc for /redoc), vendored under
# web/static/vendor/ so the pages load nothing from outside the server (issue 20: /docs was blank
# offline, its script came from a CDN).
#
#   scripts/vendor-api-docs.sh          re-fetch exactly the pinned npm versions, check each tarball's
#                                       npm integrity (sha512) and each copied file's sha256
#   scripts/vendor-api-docs.sh --check  only check the files in the tree against SHA256SUMS (offline)
#
# To move to a new version: change the pin below (version and the integrity `npm view <pkg>@<v>
# dist.integrity` prints), run with --update (writes SHA256SUMS anew), look at the diff, run the
# browser test tests/web/test_api_docs_offline.py.
set -euo pipefail

ROOT="$(cd "$(dirname "$0")/.." && pwd)"
VENDOR="$ROOT/web/static/vendor"
SUMS="$VENDOR/SHA256SUMS"

# package  version  npm dist.integrity  target folder  files (paths inside the tarball's package/)
PINS=(
  "swagger-ui-dist|5.35.0|sha512-U06rpMtW9V3XPGOBeamTUSr0Z09jMX4IJuANpE/EZbAhw0G8CgwrzU4YmXkn/h0wCDNsXdGarTNNHC3sU8yVUQ==|swagger-ui|swagger-ui-bundle.js swagger-ui-bundle.js.LICENSE.txt swagger-ui.css favicon-32x32.png LICENSE NOTICE"
  "redoc|2.5.4|sha512-M6jWhG1qoBnH6TFmzJnstyCZ87HmOY/UzDm78mHiYihEdlV/YcS9ogOo1NlElnJMeLsyxHFe2yFc4sNjHTrABQ==|redoc|bundles/redoc.standalone.js bundles/redoc.standalone.js.LICENSE.txt LICENSE"
)

mode="${1:-fetch}"
if [[ "$mode" == "--check" ]]; then
  cd "$VENDOR" && sha256sum --check --strict --quiet SHA256SUMS && echo "vendored API docs assets: OK"
  exit 0
fi
[[ "$mode" == "fetch" || "$mode" == "--update" ]] || { echo "usage: $0 [--check|--update]" >&2; exit 2; }

work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
staged="$work/vendor"
for pin in "${PINS[@]}"; do
  IFS='|' read -r package version integrity folder files <<<"$pin"
  echo "fetching $package@$version"
  (cd "$work" && npm pack --silent "$package@$version" >/dev/null)
  tarball="$work/$package-$version.tgz"
  got="sha512-$(openssl dgst -sha512 -binary "$tarball" | base64 -w0)"
  if [[ "$got" != "$integrity" ]]; then
    echo "$package@$version: integrity $got, pinned $integrity" >&2
    exit 1
  fi
  mkdir -p "$work/$package" "$staged/$folder"
  tar -xzf "$tarball" -C "$work/$package"
  for file in $files; do
    cp "$work/$package/package/$file" "$staged/$folder/$(basename "$file")"
  done
done

# The one change to a vendored file: ReDoc's sidebar footer shows Redocly's logo from their CDN
# (unconditionally, no option turns it off); point it at an empty data: URL instead, so the page asks
# nothing of another host (the image fails to decode and ReDoc hides it, keeping the link's text).
logo='src:"https://cdn.redoc.ly/redoc/logo-mini.svg"'
redoc_js="$staged/redoc/redoc.standalone.js"
[[ "$(grep -o "$logo" "$redoc_js" | wc -l)" == 1 ]] || { echo "redoc: the logo URL to replace is not there once" >&2; exit 1; }
sed -i "s|$logo|src:\"data:,\"|" "$redoc_js"

if [[ "$mode" == "--update" ]]; then
  (cd "$staged" && find . -type f -printf '%P\n' | LC_ALL=C sort | xargs sha256sum) >"$work/SHA256SUMS"
else
  cp "$SUMS" "$work/SHA256SUMS"
  (cd "$staged" && sha256sum --check --strict --quiet "$work/SHA256SUMS")
fi
for pin in "${PINS[@]}"; do
  IFS='|' read -r _ _ _ folder _ <<<"$pin"
  rm -rf "${VENDOR:?}/$folder"
  mkdir -p "$VENDOR/$folder"
  cp "$staged/$folder/"* "$VENDOR/$folder/"
done
cp "$work/SHA256SUMS" "$SUMS"
echo "vendored into $VENDOR (sha256 in SHA256SUMS)"
