#!/usr/bin/env bash
# Install a real Triton Inference Server for warmpool's tests and benchmarks (CPU, Python backend).
#
# The `tritonserver` binary ships inside the `nvidia-pytriton` wheel. PyTriton pins numpy<2, so it
# gets its OWN venv, never the project's. Idempotent: a second run only checks what is there.
#
# Result (keyed by version):
#   $WARMPOOL_CACHE/triton-venv-<version>/            the venv (python + numpy<2 for model.py)
#   $WARMPOOL_CACHE/triton-<version>/bin/tritonserver  a wrapper that sets LD_LIBRARY_PATH
#   $WARMPOOL_CACHE/triton-<version>/backends/python   libtriton_python.so + the stub for the venv's Python
#   $WARMPOOL_CACHE/triton  ->  triton-<version>       the stable path tests look up
#   $WARMPOOL_CACHE/triton-<version>/bin/python        the venv's python (torch models, weights)
#
# torch (CPU use; PyPI's Linux wheel pulls the nvidia-* CUDA wheels, ~2.9 GB) and safetensors
# go into the same venv: the Python backend runs the torch test models (tests/models/torch_*,
# tiny_lm) there, and the tests produce their weights with the same interpreter. Wheels are kept
# in $WARMPOOL_CACHE/wheels/torch, so a reinstall reads no network. WARMPOOL_TORCH=0 skips torch.
# Measured on the 2-core dev box (2026-12-04): download 141 s (2.9 GB), install from the cached
# wheels 185-370 s (unpacking ~2.9 GB; the spread is the shared machine's load).
#
# Tests find it through `tests/support/triton.py: triton_available()` (env WARMPOOL_TRITON_HOME
# overrides the stable path).
set -euo pipefail

PYTRITON_VERSION="${PYTRITON_VERSION:-0.7.0}"
TORCH_VERSION="${TORCH_VERSION:-2.15.0}"
SAFETENSORS_VERSION="${SAFETENSORS_VERSION:-0.8.0}"
CACHE="${WARMPOOL_CACHE:-$HOME/.cache/warmpool}"
VENV="$CACHE/triton-venv-$PYTRITON_VERSION"
HOME_DIR="$CACHE/triton-$PYTRITON_VERSION"
# The Python the venv (and hence the Python-backend stub) uses. The wheel ships stubs for
# several 3.x versions; the stub embeds libpython, so it must match the venv's Python exactly.
# Debian's /usr/bin/python3.11 is preferred: the stub links the system libpython3.11, so the venv's
# interpreter and the stub's embedded one are then the same build.
PYTHON="${TRITON_PYTHON:-$(ls /usr/bin/python3.11 2>/dev/null || command -v python3.11 || command -v python3)}"

log() { printf '[install-triton] %s\n' "$*" >&2; }

mkdir -p "$CACHE"

if [[ ! -x "$VENV/bin/python" ]]; then
  log "creating venv $VENV with $PYTHON"
  "$PYTHON" -m venv "$VENV"
fi
if ! "$VENV/bin/python" -c "import pytriton, numpy" 2>/dev/null; then
  log "installing nvidia-pytriton==$PYTRITON_VERSION into $VENV"
  "$VENV/bin/pip" install --quiet --disable-pip-version-check "nvidia-pytriton==$PYTRITON_VERSION"
fi

if [[ "${WARMPOOL_TORCH:-1}" != 0 ]]; then
  have="$("$VENV/bin/python" -c 'import torch, safetensors; print(torch.__version__.split("+")[0], safetensors.__version__)' 2>/dev/null || true)"
  if [[ "$have" != "$TORCH_VERSION $SAFETENSORS_VERSION" ]]; then
    WHEELS="$CACHE/wheels/torch"
    mkdir -p "$WHEELS"
    start=$SECONDS
    log "downloading torch==$TORCH_VERSION safetensors==$SAFETENSORS_VERSION wheels into $WHEELS (skips what is there)"
    "$VENV/bin/pip" download --quiet --disable-pip-version-check -d "$WHEELS" \
      "torch==$TORCH_VERSION" "safetensors==$SAFETENSORS_VERSION" 'numpy<2'
    log "installing torch into $VENV from $WHEELS"
    "$VENV/bin/pip" install --quiet --disable-pip-version-check --no-index --find-links "$WHEELS" \
      "torch==$TORCH_VERSION" "safetensors==$SAFETENSORS_VERSION" 'numpy<2'
    log "torch installed in $((SECONDS - start)) s"
  fi
fi

PY_MM="$("$VENV/bin/python" -c 'import sys; print(f"{sys.version_info[0]}.{sys.version_info[1]}")')"
WHEEL_TRITON="$("$VENV/bin/python" -c 'import pathlib, pytriton; print(pathlib.Path(pytriton.__file__).parent / "tritonserver")')"
[[ -x "$WHEEL_TRITON/bin/tritonserver" ]] || { log "no tritonserver in $WHEEL_TRITON"; exit 1; }
STUB="$WHEEL_TRITON/python_backend_stubs/$PY_MM/triton_python_backend_stub"
[[ -x "$STUB" ]] || { log "the wheel has no Python-backend stub for Python $PY_MM ($STUB)"; exit 1; }
# auditwheel put the bundled shared libraries here; the binaries find them through an RPATH
# relative to their own location, which the stub loses once copied into our backends dir.
WHEEL_LIBS="$(dirname "$(dirname "$WHEEL_TRITON")")/nvidia_pytriton.libs"
[[ -d "$WHEEL_LIBS" ]] || { log "no bundled libraries at $WHEEL_LIBS"; exit 1; }

# Shared libraries the server and the stub need from the system (the wheel carries the rest in
# external_libs). Install the Debian packages that provide missing ones.
missing_libs() {
  local libpath="$WHEEL_LIBS:$("$VENV/bin/python" -c 'import sysconfig; print(sysconfig.get_config_var("LIBDIR"))')"
  for f in "$WHEEL_TRITON/bin/tritonserver" "$STUB" "$WHEEL_TRITON/backends/python/libtriton_python.so"; do
    # LD_LIBRARY_PATH stands in for the RPATH the copied stub loses (see WHEEL_LIBS).
    [[ -e "$f" ]] || continue
    LD_LIBRARY_PATH="$libpath" ldd "$f" | awk '/not found/ {print $1}'
  done | sort -u
}
MISSING="$(missing_libs)"
if [[ -n "$MISSING" ]]; then
  log "missing shared libraries: $(echo "$MISSING" | tr '\n' ' ')"
  declare -A PKG_OF=(
    [libarchive.so.13]=libarchive13
    [libnuma.so.1]=libnuma1
    [libb64.so.0d]=libb64-0d
    [libre2.so.9]=libre2-9
    [libssl.so.3]=libssl3
    [libcrypto.so.3]=libssl3
    [libdcgm.so.3]=""
    [libgomp.so.1]=libgomp1
    [libpython3.11.so.1.0]=libpython3.11
    [libexpat.so.1]=libexpat1
  )
  PKGS=()
  for lib in $MISSING; do
    if [[ -n "${PKG_OF[$lib]+x}" && -n "${PKG_OF[$lib]}" ]]; then PKGS+=("${PKG_OF[$lib]}"); fi
  done
  if ((${#PKGS[@]})); then
    log "apt-get install ${PKGS[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq "${PKGS[@]}" >/dev/null
  fi
  MISSING="$(missing_libs)"
  [[ -z "$MISSING" ]] || { log "still missing: $MISSING"; exit 1; }
fi

# Lay out a home: a backends dir with the python backend + the right stub, and a wrapper.
mkdir -p "$HOME_DIR/bin" "$HOME_DIR/backends/python"
# place SRC DEST: copy unless DEST already holds the same bytes, through a temporary name and a
# rename, so that a rerun while tests run Triton neither fails on a busy stub ("Text file busy")
# nor rewrites a shared library that a running server has mapped.
place() {
  cmp -s "$1" "$2" && return 0
  cp -a "$1" "$2.tmp.$$" && mv -f "$2.tmp.$$" "$2"
}
for file in "$WHEEL_TRITON/backends/python/"*; do
  [[ -f "$file" ]] || continue  # __pycache__: Python rebuilds it
  place "$file" "$HOME_DIR/backends/python/$(basename "$file")"
done
place "$STUB" "$HOME_DIR/backends/python/triton_python_backend_stub"
LIBDIR="$("$VENV/bin/python" -c 'import sysconfig; print(sysconfig.get_config_var("LIBDIR"))')"
cat >"$HOME_DIR/bin/tritonserver" <<EOF
#!/usr/bin/env bash
# Generated by hack/install-triton.sh: the real tritonserver from nvidia-pytriton $PYTRITON_VERSION.
# PATH puts the triton venv first so the Python-backend stub finds numpy<2 for model.py.
export LD_LIBRARY_PATH="$WHEEL_LIBS:$LIBDIR\${LD_LIBRARY_PATH:+:\$LD_LIBRARY_PATH}"
export PATH="$VENV/bin:\$PATH"
export PYTHONPATH="$("$VENV/bin/python" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')\${PYTHONPATH:+:\$PYTHONPATH}"
exec "$WHEEL_TRITON/bin/tritonserver" "\$@"
EOF
chmod +x "$HOME_DIR/bin/tritonserver"
# A wrapper, not a symlink: Python finds its venv (pyvenv.cfg) next to the path it was started by.
printf '#!/usr/bin/env bash\nexec "%s/bin/python" "$@"\n' "$VENV" >"$HOME_DIR/bin/python"
chmod +x "$HOME_DIR/bin/python"
ln -sfn "$HOME_DIR" "$CACHE/triton"

# `tritonserver --help` exits non-zero by design; check that it prints its usage instead.
USAGE="$("$HOME_DIR/bin/tritonserver" --help 2>&1 || true)"
[[ "$USAGE" == "Usage: tritonserver"* ]] || { log "tritonserver does not run: ${USAGE:0:500}"; exit 1; }
log "ok: $CACHE/triton/bin/tritonserver (backends: $CACHE/triton/backends, python $PY_MM)"
