#!/usr/bin/env bash
# Build the Lambda base image `public.ecr.aws/lambda/python:<minor>-<arch>` offline, so that
# `sam local invoke --skip-pull-image` runs the functions in real containers without a registry.
#
# The image is a Debian bookworm minbase rootfs (debootstrap, from Debian's packages) with:
#   - the host's CPython of the template's runtime minor version, copied to the same path and
#     linked as /var/lang (the pyenv build runs there unchanged);
#   - awslambdaric (the Runtime Interface Client) and boto3/botocore at the versions the real
#     runtime ships (RUNTIME_SDK in requirements-dev.txt: the layer carries no SDK of its own);
#   - /var/runtime/bootstrap, which the Runtime Interface Emulator that SAM adds on top runs.
# SAM builds its "rapid" image on top of this one (the emulator ships inside the aws-sam-cli wheel).
#
# Cached: nothing is done when the image already exists in the engine (LAMBDA_IMAGE_REBUILD=1
# rebuilds it); the debootstrap rootfs is kept as a tarball under $CACHE_DIR, so a rebuild on
# the same machine skips debootstrap. Each step prints how long it took.
#
# Env: LAMBDA_IMAGE_CACHE_DIR (default .ci/cache/lambda-image), LAMBDA_IMAGE_REBUILD=1,
#      LAMBDA_PYTHON (interpreter to copy; default: python<minor> from pyenv or PATH),
#      DEBIAN_MIRROR (default http://deb.debian.org/debian), AWSLAMBDARIC_VERSION,
#      LAMBDA_IMAGE_PRINT_SDK=1 (print the SDK pins the image installs, then exit).
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
TEMPLATE=${TEMPLATE:-$ROOT/template.yaml}
CACHE_DIR=${LAMBDA_IMAGE_CACHE_DIR:-$ROOT/.ci/cache/lambda-image}
SUITE=bookworm
MIRROR=${DEBIAN_MIRROR:-http://deb.debian.org/debian}
AWSLAMBDARIC_VERSION=${AWSLAMBDARIC_VERSION:-3.1.1}
# Shared libraries that CPython's extension modules link against (ssl, ctypes, sqlite3, ...).
INCLUDE=ca-certificates,libssl3,libffi8,libsqlite3-0,libbz2-1.0,liblzma5,zlib1g,libexpat1,libreadline8,libncursesw6,libuuid1

log() { printf '[lambda-image] %s\n' "$*" >&2; }
die() { log "error: $*"; exit 1; }
T0=$SECONDS

# --- The runtime's SDK: one source of truth, requirements-dev.txt (the tests run it too).
mapfile -t SDK_PINS < <(grep -oE '^(boto3|botocore)==[0-9.]+' "$ROOT/requirements-dev.txt" || true)
[[ ${#SDK_PINS[@]} -eq 2 ]] || die "requirements-dev.txt must pin boto3==X and botocore==Y (found: ${SDK_PINS[*]:-none})"
if [[ ${LAMBDA_IMAGE_PRINT_SDK:-0} == 1 ]]; then
  printf '%s\n' "${SDK_PINS[@]}"
  exit 0
fi
step_start=$SECONDS
step() { step_start=$SECONDS; log "$*"; }
step_done() { log "  done in $((SECONDS - step_start)) s"; }

# --- What to build: the runtime's minor version from the template, the machine's architecture.
mapfile -t runtimes < <(grep -oE '^[[:space:]]*Runtime:[[:space:]]*python3\.[0-9]+' "$TEMPLATE" \
  | grep -oE '3\.[0-9]+' | sort -u)
[[ ${#runtimes[@]} -eq 1 ]] || die "expected one python Runtime in $TEMPLATE, found: ${runtimes[*]:-none}"
MINOR=${runtimes[0]}
case $(uname -m) in
  x86_64) ARCH=x86_64 ;;
  aarch64 | arm64) ARCH=arm64 ;;
  *) die "unsupported machine architecture $(uname -m)" ;;
esac
if grep -qE '^[[:space:]]*Architectures:.*\barm64\b' "$TEMPLATE" && [[ $ARCH != arm64 ]]; then
  log "warning: the template deploys arm64; this machine can only run $ARCH images locally"
fi
IMAGE=public.ecr.aws/lambda/python:$MINOR-$ARCH

# The image records the SDK it was built with: a change of the pins rebuilds it.
SDK_LABEL="${SDK_PINS[*]}"
built_sdk=$(docker image inspect -f '{{ index .Config.Labels "videodb-retry.sdk" }}' "$IMAGE" 2>/dev/null || true)
if [[ ${LAMBDA_IMAGE_REBUILD:-0} != 1 && $built_sdk == "$SDK_LABEL" ]]; then
  log "$IMAGE already exists in the engine with $SDK_LABEL; nothing to do ($((SECONDS - T0)) s)"
  echo "$IMAGE"
  exit 0
fi
log "building $IMAGE (python $MINOR, $ARCH)"
previous=$(docker image inspect -f '{{.Id}}' "$IMAGE" 2>/dev/null || true)

# --- The interpreter to copy in.
if [[ -z ${LAMBDA_PYTHON:-} ]]; then
  for candidate in $(printf '%s\n' /root/.pyenv/versions/"$MINOR".*/bin/python"$MINOR" | sort -V -r) \
    "$(command -v "python$MINOR" || true)"; do
    [[ -x $candidate ]] && { LAMBDA_PYTHON=$candidate; break; }
  done
fi
[[ -x ${LAMBDA_PYTHON:-} ]] || die "no python$MINOR found (set LAMBDA_PYTHON)"
PREFIX=$("$LAMBDA_PYTHON" -c 'import sys; print(sys.base_prefix)')
[[ $("$LAMBDA_PYTHON" -c 'import sys; print("%d.%d" % sys.version_info[:2])') == "$MINOR" ]] \
  || die "$LAMBDA_PYTHON is not python $MINOR"
[[ $PREFIX == /usr || $PREFIX == /usr/local ]] \
  && die "$LAMBDA_PYTHON lives in $PREFIX; copy a self-contained build (pyenv) instead"

# --- Tools.
missing=()
command -v debootstrap >/dev/null || missing+=(debootstrap)
command -v docker >/dev/null || missing+=(docker.io)
if ((${#missing[@]})); then
  step "installing ${missing[*]}"
  apt-get update -qq >/dev/null 2>&1 || log "apt-get update reported errors (continuing)"
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  step_done
fi
docker info >/dev/null 2>&1 || die "no Docker engine answers (run scripts/container/docker-up.sh)"

# --- The Debian rootfs, from the cache when it is there.
mkdir -p "$CACHE_DIR"
key=$(printf '%s\n' "$SUITE" "$MIRROR" "$INCLUDE" "$ARCH" | sha256sum | cut -c1-12)
ROOTFS_TAR=$CACHE_DIR/rootfs-$SUITE-minbase-$key.tar
WORK=$(mktemp -d "${TMPDIR:-/var/tmp}/lambda-image.XXXXXX")
trap 'rm -rf "$WORK"' EXIT
ROOTFS=$WORK/rootfs

if [[ -s $ROOTFS_TAR ]]; then
  step "unpacking cached rootfs $ROOTFS_TAR"
  mkdir -p "$ROOTFS"
  tar -C "$ROOTFS" -xf "$ROOTFS_TAR"
  step_done
else
  step "debootstrap --variant=minbase $SUITE (from $MIRROR)"
  debootstrap --variant=minbase --include="$INCLUDE" "$SUITE" "$ROOTFS" "$MIRROR" \
    >"$WORK/debootstrap.log" 2>&1 || { tail -n 30 "$WORK/debootstrap.log" >&2; die "debootstrap failed"; }
  # Package caches are not needed at run time.
  rm -rf "$ROOTFS"/var/cache/apt/archives/*.deb "$ROOTFS"/var/lib/apt/lists/*
  step_done
  step "caching the rootfs as $ROOTFS_TAR"
  tar -C "$ROOTFS" -cf "$ROOTFS_TAR.tmp" . && mv "$ROOTFS_TAR.tmp" "$ROOTFS_TAR"
  step_done
fi

# --- Python, with the runtime client and boto3 (the real runtime ships boto3).
step "copying $PREFIX into the rootfs"
mkdir -p "$ROOTFS$PREFIX"
# The test suite, static library and GUI modules are not needed; the host's extra
# site-packages are left out so that only the layer provides the functions' dependencies.
tar -C "$PREFIX" -c \
  --exclude="./lib/python$MINOR/test" --exclude="./lib/python$MINOR/idlelib" \
  --exclude="./lib/python$MINOR/tkinter" --exclude="./lib/python$MINOR/config-$MINOR-*" \
  --exclude="./lib/python$MINOR/site-packages/*" --exclude='*.a' . \
  | tar -C "$ROOTFS$PREFIX" -x
mkdir -p "$ROOTFS/var"
[[ $PREFIX == /var/lang ]] || ln -sfn "$PREFIX" "$ROOTFS/var/lang"
step_done

step "pip install awslambdaric==$AWSLAMBDARIC_VERSION ${SDK_PINS[*]} into the image's Python"
"$LAMBDA_PYTHON" -m pip install --quiet --disable-pip-version-check --no-warn-script-location \
  --root-user-action=ignore --only-binary=:all: --target "$ROOTFS$PREFIX/lib/python$MINOR/site-packages" \
  "awslambdaric==$AWSLAMBDARIC_VERSION" "${SDK_PINS[@]}" 2> >(grep -v 'is ignored: it is neither a file' >&2)
step_done

mkdir -p "$ROOTFS/var/runtime" "$ROOTFS/var/task" "$ROOTFS/opt"
cat >"$ROOTFS/var/runtime/bootstrap" <<EOF
#!/bin/sh
# Lambda bootstrap: the Runtime Interface Client runs the handler against the runtime API.
export PYTHONPATH="/var/task:/opt/python/lib/python$MINOR/site-packages:/opt/python\${PYTHONPATH:+:\$PYTHONPATH}"
cd /var/task
exec /var/lang/bin/python$MINOR -m awslambdaric "\${1:-\${_HANDLER:-\$AWS_LAMBDA_FUNCTION_HANDLER}}"
EOF
cat >"$ROOTFS/lambda-entrypoint.sh" <<'EOF'
#!/bin/sh
# Same role as the real image's entrypoint: run the bootstrap with the handler (CMD).
exec /var/runtime/bootstrap "$@"
EOF
chmod 755 "$ROOTFS/var/runtime/bootstrap" "$ROOTFS/lambda-entrypoint.sh"

step "smoke test: the copied Python imports ssl, awslambdaric and boto3 in the rootfs"
chroot "$ROOTFS" /var/lang/bin/python"$MINOR" -c \
  'import ssl, ctypes, sqlite3, lzma, bz2, zlib, uuid, awslambdaric, boto3, botocore; print("python", __import__("sys").version.split()[0], "boto3", boto3.__version__, "botocore", botocore.__version__)' >&2 \
  || die "the copied Python does not run inside the rootfs"
step_done

step "docker import as $IMAGE"
tar -C "$ROOTFS" -c . | docker import \
  -c 'WORKDIR /var/task' \
  -c "ENV PATH=/var/lang/bin:/usr/local/bin:/usr/bin:/bin" \
  -c 'ENV LANG=C.UTF-8' \
  -c 'ENV TZ=:/etc/localtime' \
  -c 'ENV LAMBDA_TASK_ROOT=/var/task' \
  -c 'ENV LAMBDA_RUNTIME_DIR=/var/runtime' \
  -c 'ENTRYPOINT ["/lambda-entrypoint.sh"]' \
  -c 'CMD ["app.lambda_handler"]' \
  -c "LABEL videodb-retry.sdk=\"$SDK_LABEL\"" \
  -m "offline Lambda python$MINOR base image (scripts/container/lambda-image.sh)" \
  - "$IMAGE" >/dev/null
step_done
# A rebuild leaves the previous image untagged: remove it unless images built on it still need it.
[[ -n $previous ]] && docker image rm "$previous" >/dev/null 2>&1 || true
log "built $IMAGE in $((SECONDS - T0)) s"
echo "$IMAGE"
