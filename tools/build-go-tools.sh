#!/usr/bin/env bash
# Build the Go tools pinned in tools/go-tools.txt from source, in module mode,
# with checksums from the committed go.sum files, into a cache outside the work
# tree. Each tool is rebuilt only when its pin, its wrapper module, its hook or
# the Go version change.
#
#   tools/build-go-tools.sh [NAME...]   build (default: every tool in the file)
#   tools/build-go-tools.sh --list      print NAME VERSION of each tool
#   tools/build-go-tools.sh --bin-dir   print the bin directory (no build)
#   tools/build-go-tools.sh --env       print `export` lines for using the tools
#
# Cache: ${ROADBIKE_TOOLS_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/roadbike/tools}
#   <name>-<version>/   the binary (and hook files), plus .stamp
#   bin/                symlinks to every built binary: put it on PATH
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
list="$here/go-tools.txt"
cache="${ROADBIKE_TOOLS_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/roadbike/tools}"
bindir="$cache/bin"

# Use the Go on PATH; a go.mod asking for a newer Go fails instead of fetching
# a toolchain. To pin a newer one, set GOTOOLCHAIN=goX.Y.Z here.
export GOTOOLCHAIN="${ROADBIKE_GOTOOLCHAIN:-local}"
# Bump to force every tool to rebuild when the recipe below changes.
recipe=1

die() { echo "build-go-tools: $*" >&2; exit 1; }

# --- hooks -------------------------------------------------------------------
# NAME_pre runs before `go build`, NAME_post after, with: out dir, wrapper dir,
# package, version. NAME_pre may append `go build` flags to the array `extra`.

# pulumi-resource-kubernetes embeds schema-embed.json and
# terraform-mapping-embed.json, which upstream's `make` generates from
# schema.json / terraform-mapping.json (adding the version); the module zip
# therefore lacks them and a plain build fails with "pattern schema-embed.json:
# no matching files found". Go refuses -overlay for files in GOMODCACHE, so copy
# the (checksum-verified) module out of the cache, generate the two files in
# the copy, and build with a temporary copy of the wrapper's go.mod/go.sum that
# replaces the module with that copy (-modfile). All other modules still come
# from the cache, checked against the committed go.sum.
kubernetes_schema_pre() {
	local out=$1 wrapper=$2 version=$4 mod=github.com/pulumi/pulumi-kubernetes/provider/v4 src gen
	src=$(cd "$wrapper" && go list -mod=readonly -m -f '{{.Dir}}' "$mod") || return 1
	[[ -n $src && -d $src ]] || { echo "module $mod not in the module cache" >&2; return 1; }
	gen="$out/.gen"
	rm -rf "$gen"
	mkdir -p "$gen"
	cp -R "$src" "$gen/provider"
	chmod -R u+w "$gen/provider"
	python3 - "$gen/provider/cmd/pulumi-resource-kubernetes" "$version" <<'PY' || return 1
import json, sys
d, version = sys.argv[1:3]
with open(f"{d}/schema.json") as f:
    schema = json.load(f)
schema["version"] = version
with open(f"{d}/schema-embed.json", "w") as f:
    json.dump(schema, f, separators=(",", ":"))
with open(f"{d}/terraform-mapping.json") as f:
    mapping = json.load(f)
with open(f"{d}/terraform-mapping-embed.json", "w") as f:
    json.dump(mapping, f, separators=(",", ":"))
PY
	cp "$wrapper/go.mod" "$gen/go.mod"
	cp "$wrapper/go.sum" "$gen/go.sum"
	printf '\nreplace %s => %s\n' "$mod" "$gen/provider" >>"$gen/go.mod"
	extra+=("-modfile=$gen/go.mod")
}
kubernetes_schema_post() { rm -rf "$1/.gen"; }

# Our Python language host runs programs through sdk/v3's exec script, which it
# looks for next to its own (symlink-resolved) executable. Python dynamic providers
# (the cosign key pair) are the plugin `pulumi-resource-pulumi-python`, sdk/v3's
# launcher of `python -m pulumi.dynamic`: both come from the checksummed module.
python_host_pre() { :; }
python_host_post() {
	local out=$1 wrapper=$2 sdk
	sdk=$(cd "$wrapper" && go list -mod=readonly -m -f '{{.Dir}}' github.com/pulumi/pulumi/sdk/v3) || return 1
	install -m 0755 "$sdk/python/cmd/pulumi-language-python-exec" "$out/pulumi-language-python-exec"
	install -m 0755 "$sdk/python/dist/pulumi-resource-pulumi-python" "$out/pulumi-resource-pulumi-python"
	mkdir -p "${out%/*}/bin"
	ln -sfn "../${out##*/}/pulumi-resource-pulumi-python" "${out%/*}/bin/pulumi-resource-pulumi-python"
}

# pulumi-resource-random embeds the package schema and the bridge metadata,
# which pulumi-tfgen-random (same wrapper module) generates from the Terraform
# provider's schema; upstream commits them, we generate them at build time. Build
# tfgen with the same version, run it (docs and examples skipped: they need the
# Terraform repository's docs and the HCL converter plugin), and hand both
# files to `go build` with -overlay, so nothing is written into the work tree.
random_schema_pre() {
	local out=$1 wrapper=$2 version=$4 gen cmd=$2/cmd/pulumi-resource-random
	gen="$out/.gen"
	rm -rf "$gen"
	mkdir -p "$gen"
	(cd "$wrapper" && CGO_ENABLED=0 go build -mod=readonly -trimpath \
		-ldflags "-s -w -X roadbike.example/tools/random/provider.Version=$version" \
		-o "$gen/pulumi-tfgen-random" roadbike.example/tools/random/cmd/pulumi-tfgen-random) || return 1
	(cd "$gen" && ./pulumi-tfgen-random schema --out "$gen" --skip-docs --skip-examples --logtostderr) || return 1
	[[ -s $gen/schema.json && -s $gen/bridge-metadata.json ]] || { echo "tfgen wrote no schema.json/bridge-metadata.json" >&2; return 1; }
	python3 - "$gen" "$cmd" <<'PY' || return 1
import json, sys
gen, cmd = sys.argv[1:3]
overlay = {"Replace": {f"{cmd}/{f}": f"{gen}/{f}" for f in ("schema.json", "bridge-metadata.json")}}
with open(f"{gen}/overlay.json", "w") as f:
    json.dump(overlay, f)
PY
	extra+=("-overlay=$gen/overlay.json")
}
# Keep the generated schema next to the binary; drop the tfgen binary.
random_schema_post() {
	local out=$1
	cp "$out/.gen/schema.json" "$out/schema.json" && rm -rf "$out/.gen"
}

# --- the list ------------------------------------------------------------------
# Prints the tool lines (comments and blanks dropped), optionally only NAME.
lines() {
	local want=${1:-}
	while read -r name rest; do
		[[ -z $name || $name == \#* ]] && continue
		[[ -n $want && $name != "$want" ]] && continue
		echo "$name $rest"
	done <"$list"
}

case "${1:-}" in
--list) lines | awk '{print $1, $2}'; exit 0 ;;
--bin-dir) echo "$bindir"; exit 0 ;;
--env)
	cat <<EOT
export PATH="$bindir:\$PATH"
export PULUMI_DISABLE_AUTOMATIC_PLUGIN_ACQUISITION=true
export PULUMI_SKIP_UPDATE_CHECK=true
EOT
	exit 0 ;;
-h|--help) sed -n '2,15p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'; exit 0 ;;
-*) die "unknown option $1" ;;
esac

command -v go >/dev/null || die "go not found on PATH"
mkdir -p "$cache" "$bindir"
# One build at a time per cache (a developer and CI, two make targets, ...).
if command -v flock >/dev/null; then
	exec 9>"$cache/.lock"
	if ! flock -n 9; then
		echo "build-go-tools: another build holds $cache/.lock; waiting for it to end..." >&2
		flock 9
	fi
fi

goversion=$(go env GOVERSION)

build_one() {
	local name=$1 version=$2 modver=$3 wrapper=$4 pkg=$5
	shift 5
	local xflags=() tags="" cgo=0 hook="" bin=${pkg##*/} opt
	for opt in "$@"; do
		case $opt in
		x=*) xflags+=("-X" "${opt#x=}") ;;
		tags=*) tags=${opt#tags=} ;;
		cgo=*) cgo=${opt#cgo=} ;;
		hook=*) hook=${opt#hook=} ;;
		bin=*) bin=${opt#bin=} ;;
		*) die "$name: unknown option '$opt' in $list" ;;
		esac
	done
	xflags=("${xflags[@]//\{version\}/$version}")
	[[ $modver == "=" ]] && modver="v$version"

	local wdir=""
	if [[ $wrapper != "-" ]]; then
		wdir="$here/$wrapper"
		[[ -f $wdir/go.mod && -f $wdir/go.sum ]] || die "$name: $wdir has no go.mod and go.sum"
	fi

	# What the build depends on, hashed into the stamp.
	local stamp
	stamp=$({
		echo "recipe $recipe"
		echo "go $goversion $(go env GOOS)/$(go env GOARCH)"
		echo "line $name $version $modver $wrapper $pkg $*"
		[[ -n $hook ]] && declare -f "${hook}_pre" "${hook}_post"
		if [[ -n $wdir ]]; then
			(cd "$wdir" && find . -type f ! -name '*~' -print0 | sort -z | xargs -0 sha256sum)
		fi
	} | sha256sum | cut -d' ' -f1)

	local out="$cache/$name-$version"
	if [[ -x $out/$bin && -f $out/.stamp && $(cat "$out/.stamp") == "$stamp" ]]; then
		echo "$name $version: cached"
		link "$out" "$bin"
		return 0
	fi

	echo "building $name $version ..."
	local start=$SECONDS log
	rm -rf "$out"
	mkdir -p "$out"
	log="$out/.build.log"
	local flags=(-trimpath -ldflags "-s -w ${xflags[*]}")
	[[ -n $tags ]] && flags+=(-tags "$tags")
	local extra=()

	if [[ -n $wdir ]]; then
		check_modver "$name" "$wdir" "$pkg" "$modver" || return 1
	fi
	if [[ -n $hook ]]; then
		"${hook}_pre" "$out" "$wdir" "$pkg" "$version" || fail "$name" "${hook}_pre" "$log"
	fi

	local cmd
	if [[ -n $wdir ]]; then
		cmd=(go build -mod=readonly "${flags[@]}" "${extra[@]}" -o "$out/$bin" "$pkg")
		echo "  (cd tools/$wrapper && CGO_ENABLED=$cgo ${cmd[*]})" >"$log"
		(cd "$wdir" && CGO_ENABLED=$cgo "${cmd[@]}") >>"$log" 2>&1 || fail "$name" "${cmd[*]}" "$log"
	else
		cmd=(go install "${flags[@]}" "${extra[@]}" "$pkg@$modver")
		echo "  CGO_ENABLED=$cgo GOBIN=$out ${cmd[*]}" >"$log"
		(cd "$out" && CGO_ENABLED=$cgo GOBIN="$out" "${cmd[@]}") >>"$log" 2>&1 || fail "$name" "${cmd[*]}" "$log"
		[[ -x $out/$bin ]] || fail "$name" "${cmd[*]} (no $bin produced)" "$log"
	fi

	if [[ -n $hook ]]; then
		"${hook}_post" "$out" "$wdir" "$pkg" "$version" || fail "$name" "${hook}_post" "$log"
	fi
	echo "$stamp" >"$out/.stamp"
	link "$out" "$bin"
	echo "building $name $version ... done in $((SECONDS - start)) s ($(du -h "$out/$bin" | cut -f1))"
}

# The module that provides PACKAGE (or the MODULE of MODULE@VERSION) must be at
# the pinned version in the wrapper's build list.
check_modver() {
	local name=$1 wdir=$2 pkg=$3 modver=$4 mod want got
	if [[ $modver == *@* ]]; then
		mod=${modver%@*} want=${modver#*@}
		got=$(cd "$wdir" && go list -mod=readonly -m -f '{{.Version}}' "$mod") ||
			fail "$name" "go list -m $mod" ""
	else
		want=$modver
		got=$(cd "$wdir" && go list -mod=readonly -e -f '{{.Module.Version}}' "$pkg") ||
			fail "$name" "go list $pkg" ""
	fi
	[[ $got == "$want" ]] || fail "$name" \
		"version check: tools/go-tools.txt pins $want but tools/${wdir#"$here"/}/go.mod has $got" ""
}

fail() {
	local name=$1 what=$2 log=$3
	echo "build-go-tools: FAILED: $name: $what" >&2
	if [[ -n $log && -f $log ]]; then
		echo "--- last lines of $log:" >&2
		tail -n 30 "$log" >&2
	fi
	exit 1
}

link() {
	local out=$1 bin=$2
	ln -sfn "../${out##*/}/$bin" "$bindir/$bin"
}

names=("$@")
if [[ ${#names[@]} -eq 0 ]]; then
	mapfile -t names < <(lines | awk '{print $1}')
fi
for n in "${names[@]}"; do
	line=$(lines "$n")
	[[ -n $line ]] || die "unknown tool '$n' (see tools/go-tools.txt)"
	# shellcheck disable=SC2086  # the line is whitespace-separated by design
	build_one $line
done
echo "bin dir: $bindir"
