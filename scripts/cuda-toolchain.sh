#!/usr/bin/env bash
# cuda-toolchain.sh — a CUDA 13 toolchain for `cargo build --features cuda`, made of PyPI wheels.
#
# Usage (from anywhere; the repository is the folder above this script):
#   scripts/cuda-toolchain.sh build [CARGO ARGS]  `cargo fetch --locked`, prepare, then `cargo
#                                                 build --release --locked --features cuda [ARGS]`
#   scripts/cuda-toolchain.sh prepare             prepare only (download, links, stub); say where
#   scripts/cuda-toolchain.sh env                 prepare, then print `export` lines for eval
#   scripts/cuda-toolchain.sh libdir              print the directory of the CUDA libraries
#                                                 (put it on LD_LIBRARY_PATH to run a cuda binary)
#   scripts/cuda-toolchain.sh run CMD [ARGS]      run CMD with those libraries on LD_LIBRARY_PATH;
#                                                 where no NVIDIA driver is installed the stub
#                                                 libcuda.so.1 is added too, so that a cuda binary
#                                                 starts and reports that there is no GPU
#   source scripts/cuda-toolchain.sh              (bash) prepare and set PATH, CUDA_HOME and
#                                                 CUDA_COMPUTE_CAP in the current shell
#   scripts/cuda-toolchain.sh --help              this text
#
# Environment:
#   CUDA_COMPUTE_CAP   GPU architecture the kernels are compiled for (default: that of this
#                      machine's first GPU when nvidia-smi reports one, else 90). Common values:
#                        80  A100, A30                86  RTX 30xx, A10, A40, RTX A6000
#                        89  L4, L40S, RTX 40xx       90  H100, H200, GH200
#                      Build for the GPU the binary will run on.
#   CUDNN=1            also install cuDNN 9 and build with candle's `cudnn` feature
#   AIFR_CUDA_DIR      cache directory (default ${XDG_CACHE_HOME:-$HOME/.cache}/aifr-eval/cuda13)
#   AIFR_CUDA_TOOLKIT  auto (default) | wheels | system. `auto` uses a system CUDA toolkit only
#                      when its nvcc is CUDA 13.x and not newer than the CUDA version of this
#                      machine's driver (nvidia-smi); otherwise the pinned wheels (nvcc 13.0,
#                      whose PTX every CUDA 13 driver, i.e. driver >= 580, accepts).
#   CARGO_HOME, CARGO_TARGET_DIR, PYTHON (default python3), CC (default cc) are honoured.
#
# Needs: python3 with the venv module, a C compiler, ~1 GB of disk, PyPI access once.
# See docs/cuda.md for what it does and why, and how to run the binary on a GPU machine.

# ---------------------------------------------------------------------------------------------
# Pins. nvcc decides the PTX version embedded in the binary; a driver refuses PTX newer than
# itself (CUDA_ERROR_UNSUPPORTED_PTX_VERSION), so nvcc stays at 13.0, the oldest CUDA 13.
_aifr_cuda_pins=(
    nvidia-cuda-nvcc==13.0.88
    nvidia-cuda-crt==13.0.88
    nvidia-nvvm==13.0.88
    nvidia-cuda-cccl==13.0.85
    nvidia-cuda-runtime==13.0.96
    nvidia-cuda-nvrtc==13.0.88
    nvidia-cublas==13.0.2.14
    nvidia-curand==10.4.0.35
)
# cudarc 0.19 binds the cuDNN 9.21 API; at run time any cuDNN 9 of the GPU machine is used.
_aifr_cuda_cudnn_pin=nvidia-cudnn-cu13==9.21.1.3

_aifr_cuda_say() { echo "cuda-toolchain: $*" >&2; }

_aifr_cuda_usage() {
    # The comment block at the top of this file, without the leading '# '.
    sed -n '2,/^$/p' "$_aifr_cuda_self" | sed -e '/^$/d' -e 's/^# \{0,1\}//'
}

# The CUDA version of the installed driver ("13.0"), empty without a driver.
_aifr_cuda_driver_version() {
    command -v nvidia-smi >/dev/null 2>&1 || return 0
    nvidia-smi 2>/dev/null | sed -n 's/.*CUDA Version: *\([0-9][0-9]*\.[0-9][0-9]*\).*/\1/p' | head -n 1
}

# "major.minor" of an nvcc, empty when it does not run.
_aifr_cuda_nvcc_version() {
    "$1" --version 2>/dev/null | sed -n 's/.*release \([0-9][0-9]*\.[0-9][0-9]*\).*/\1/p' | head -n 1
}

# 0 when version $1 <= version $2 (both "major.minor").
_aifr_cuda_le() {
    local a1=${1%%.*} a2=${1#*.} b1=${2%%.*} b2=${2#*.}
    [ "$a1" -lt "$b1" ] || { [ "$a1" -eq "$b1" ] && [ "$a2" -le "$b2" ]; }
}

# The cudarc version in Cargo.lock and its unpacked sources in the cargo registry.
_aifr_cuda_cudarc_src() {
    local ver reg
    ver=$(awk '/^name = "cudarc"$/ { getline; gsub(/version = |"/, ""); print; exit }' "$_aifr_cuda_repo/Cargo.lock")
    if [ -z "$ver" ]; then
        _aifr_cuda_say "Cargo.lock in $_aifr_cuda_repo names no cudarc"
        return 1
    fi
    reg=${CARGO_HOME:-$HOME/.cargo}/registry/src
    for d in "$reg"/*/"cudarc-$ver"; do
        if [ -d "$d/src/driver/sys" ]; then
            echo "$d"
            return 0
        fi
    done
    _aifr_cuda_say "the sources of cudarc $ver are not in $reg (the stub libcuda is made from its"
    _aifr_cuda_say "symbol list). Run 'cargo fetch --locked' in $_aifr_cuda_repo first, then try again."
    return 1
}

# A stand-in libcuda.so (SONAME libcuda.so.1) for the linker: every driver function cudarc
# declares, each returning CUDA_ERROR_STUB_LIBRARY (34). At run time the real driver is loaded.
_aifr_cuda_make_stub() {
    local out=$1 src cc=${CC:-cc} c
    src=$(_aifr_cuda_cudarc_src) || return 1
    if ! command -v "$cc" >/dev/null 2>&1; then
        _aifr_cuda_say "no C compiler ('$cc') to build the stub libcuda.so: install gcc or set CC"
        return 1
    fi
    mkdir -p "$(dirname "$out")" || return 1
    c=$(dirname "$out")/libcuda-stub.c
    {
        echo "/* generated by scripts/cuda-toolchain.sh from $(basename "$src"); link-time only */"
        grep -ohE '^pub unsafe fn cu[A-Za-z0-9_]+\(' "$src"/src/driver/sys/*.rs |
            sed -E 's/^pub unsafe fn (cu[A-Za-z0-9_]+)\($/\1/' | sort -u |
            while read -r f; do echo "int $f(void) { return 34; }"; done
    } >"$c.tmp"
    if [ "$(grep -c '^int cu' "$c.tmp")" -lt 100 ]; then
        _aifr_cuda_say "found too few driver functions in $src/src/driver/sys (layout changed?)"
        return 1
    fi
    mv "$c.tmp" "$c"
    "$cc" -shared -fPIC -Wl,-soname,libcuda.so.1 -o "$out.tmp" "$c" && mv "$out.tmp" "$out"
}

# Prepares the wheel toolchain under $_aifr_cuda_dir; sets _aifr_cuda_home. Idempotent: pip
# runs only when the pin list changed, links and the stub are (re)made only when missing.
_aifr_cuda_prepare_wheels() {
    local dir=$_aifr_cuda_dir py=${PYTHON:-python3} venv specs stamp cu lib f plain cudnn
    venv=$dir/venv
    specs="${_aifr_cuda_pins[*]}"
    [ "${CUDNN:-0}" = 1 ] && specs="$specs $_aifr_cuda_cudnn_pin"
    stamp=$dir/installed
    mkdir -p "$dir" || return 1
    if [ ! -x "$venv/bin/python" ]; then
        if ! command -v "$py" >/dev/null 2>&1; then
            _aifr_cuda_say "'$py' not found: Python 3 is needed to install the CUDA wheels (set PYTHON)"
            return 1
        fi
        _aifr_cuda_say "creating a Python environment in $venv"
        if ! "$py" -m venv "$venv" >/dev/null 2>"$dir/venv.log"; then
            rm -rf "$venv"
            _aifr_cuda_say "'$py -m venv' failed ($(tail -n 1 "$dir/venv.log"))."
            _aifr_cuda_say "Install the venv module (Debian/Ubuntu: apt-get install python3-venv) and try again."
            return 1
        fi
    fi
    # The stamp lists what was installed; pip runs again only when a wanted pin is not in it.
    local need=0 s
    for s in $specs; do
        grep -qxF "$s" "$stamp" 2>/dev/null || need=1
    done
    if [ "$need" = 1 ]; then
        _aifr_cuda_say "installing the CUDA 13.0 wheels from PyPI into $venv (about 1 GB, once)"
        # shellcheck disable=SC2086
        "$venv/bin/python" -m pip install --disable-pip-version-check -q $specs || {
            _aifr_cuda_say "pip could not install: $specs"
            return 1
        }
        printf '%s\n' $specs >"$stamp"
    fi
    cu=$("$venv/bin/python" -c 'import nvidia, os, sys
for p in nvidia.__path__:
    if os.path.isfile(os.path.join(p, "cu13", "bin", "nvcc")):
        print(os.path.join(p, "cu13")); sys.exit(0)
sys.exit(1)') || {
        _aifr_cuda_say "the wheels are installed but no nvidia/cu13/bin/nvcc was found in $venv"
        return 1
    }
    lib=$cu/lib
    # The wheels carry only versioned file names (libcublas.so.13); `-lcublas` wants libcublas.so.
    for f in libcudart.so.13 libnvrtc.so.13 libcublas.so.13 libcublasLt.so.13 libcurand.so.10; do
        if [ ! -e "$lib/$f" ]; then
            _aifr_cuda_say "$lib/$f is missing from the wheels"
            return 1
        fi
        plain=${f%%.so.*}.so
        [ -L "$lib/$plain" ] || [ -e "$lib/$plain" ] || ln -s "$f" "$lib/$plain"
    done
    if [ "${CUDNN:-0}" = 1 ]; then
        cudnn=$(find "$venv" -name 'libcudnn.so.9' -print -quit)
        if [ -z "$cudnn" ]; then
            _aifr_cuda_say "libcudnn.so.9 not found in $venv after installing $_aifr_cuda_cudnn_pin"
            return 1
        fi
        ln -sfn "$cudnn" "$lib/libcudnn.so"
        ln -sfn "$cudnn" "$lib/libcudnn.so.9"
    fi
    # No wheel carries the driver (it comes with the NVIDIA kernel module). cudarc looks in
    # $CUDA_HOME/lib/stubs too, as for the toolkit's own stub; nothing there is on LD_LIBRARY_PATH.
    if [ ! -e "$lib/stubs/libcuda.so" ]; then
        _aifr_cuda_say "building the link-time stub $lib/stubs/libcuda.so"
        _aifr_cuda_make_stub "$lib/stubs/libcuda.so" || return 1
    fi
    # For `run` on a machine without a driver only: the stub under its run-time name.
    mkdir -p "$dir/nodriver" && ln -sfn "$lib/stubs/libcuda.so" "$dir/nodriver/libcuda.so.1"
    _aifr_cuda_home=$cu
}

# A system toolkit: sets _aifr_cuda_home (and, when it has no libcuda.so to link against,
# _aifr_cuda_link_stub) or fails with the reason.
_aifr_cuda_try_system() {
    local nvcc="" v drv home
    if [ -n "${CUDA_HOME:-}" ] && [ -x "$CUDA_HOME/bin/nvcc" ]; then
        nvcc=$CUDA_HOME/bin/nvcc
    elif command -v nvcc >/dev/null 2>&1; then
        nvcc=$(command -v nvcc)
    elif [ -x /usr/local/cuda/bin/nvcc ]; then
        nvcc=/usr/local/cuda/bin/nvcc
    fi
    if [ -z "$nvcc" ]; then
        _aifr_cuda_why="no nvcc on PATH, in \$CUDA_HOME/bin or /usr/local/cuda/bin"
        return 1
    fi
    # Inside the wheels' own tree (a second source of this script): not a system toolkit.
    case $(readlink -f "$nvcc") in "$(readlink -f "$_aifr_cuda_dir")"/*)
        _aifr_cuda_why="the nvcc on PATH is this script's own"
        return 1 ;;
    esac
    v=$(_aifr_cuda_nvcc_version "$nvcc")
    drv=$(_aifr_cuda_driver_version)
    if [ "${v%%.*}" != 13 ]; then
        _aifr_cuda_why="$nvcc is CUDA ${v:-?}, not 13.x"
        return 1
    fi
    if [ -z "$drv" ]; then
        _aifr_cuda_why="no NVIDIA driver here (nvidia-smi), so nothing tells which PTX the target accepts"
        return 1
    fi
    if ! _aifr_cuda_le "$v" "$drv"; then
        _aifr_cuda_why="$nvcc is CUDA $v, newer than the driver's CUDA $drv (its PTX would be refused)"
        return 1
    fi
    home=$(dirname "$(dirname "$(readlink -f "$nvcc")")")
    _aifr_cuda_home=$home
    _aifr_cuda_link_stub=""
    if ! ls "$home"/lib64/stubs/libcuda.so "$home"/lib/stubs/libcuda.so \
        "$home"/targets/x86_64-linux/lib/stubs/libcuda.so >/dev/null 2>&1 &&
        ! { ldconfig -p 2>/dev/null | grep -q 'libcuda\.so '; }; then
        _aifr_cuda_link_stub=$_aifr_cuda_dir/system-stub
        [ -e "$_aifr_cuda_link_stub/libcuda.so" ] ||
            _aifr_cuda_make_stub "$_aifr_cuda_link_stub/libcuda.so" || return 1
    fi
    _aifr_cuda_say "using the system CUDA $v toolkit in $home (driver: CUDA $drv)"
}

# The compute capability: CUDA_COMPUTE_CAP, else this machine's first GPU, else 90.
_aifr_cuda_pick_cap() {
    local cap=${CUDA_COMPUTE_CAP:-} smi
    if [ -z "$cap" ] && command -v nvidia-smi >/dev/null 2>&1; then
        smi=$(nvidia-smi --query-gpu=compute_cap --format=csv,noheader 2>/dev/null | head -n 1 | tr -d ' .')
        case $smi in [0-9][0-9] | [0-9][0-9][0-9]) cap=$smi ;; esac
    fi
    cap=${cap:-90}
    case $cap in
    [0-9][0-9] | [0-9][0-9][0-9] | [0-9][0-9]a | [0-9][0-9][0-9]a) ;;
    *)
        _aifr_cuda_say "CUDA_COMPUTE_CAP='$cap' is not a compute capability like 80, 86, 89 or 90"
        return 1
        ;;
    esac
    _aifr_cuda_cap=$cap
}

# Everything `prepare` does; leaves the results in _aifr_cuda_home, _aifr_cuda_cap,
# _aifr_cuda_link_stub.
_aifr_cuda_prepare() {
    _aifr_cuda_home="" _aifr_cuda_link_stub="" _aifr_cuda_why=""
    _aifr_cuda_pick_cap || return 1
    local mode=${AIFR_CUDA_TOOLKIT:-auto} drv
    case $mode in
    auto)
        if ! _aifr_cuda_try_system; then
            [ -n "$_aifr_cuda_why" ] && _aifr_cuda_say "pinned CUDA 13.0 wheels ($_aifr_cuda_why)"
            _aifr_cuda_prepare_wheels || return 1
        fi
        ;;
    system)
        if ! _aifr_cuda_try_system; then
            _aifr_cuda_say "AIFR_CUDA_TOOLKIT=system, but: $_aifr_cuda_why"
            return 1
        fi
        ;;
    wheels) _aifr_cuda_prepare_wheels || return 1 ;;
    *)
        _aifr_cuda_say "AIFR_CUDA_TOOLKIT must be auto, wheels or system, found '$mode'"
        return 1
        ;;
    esac
    drv=$(_aifr_cuda_driver_version)
    if [ -n "$drv" ] && ! _aifr_cuda_le 13.0 "$drv"; then
        _aifr_cuda_say "warning: this machine's driver supports CUDA $drv; a CUDA 13 binary needs driver 580 or newer to run"
    fi
}

# The directories a cuda binary needs at run time (CUDA libraries; not the driver).
_aifr_cuda_runtime_dirs() {
    if [ -d "$_aifr_cuda_home/lib64" ]; then echo "$_aifr_cuda_home/lib64"; else echo "$_aifr_cuda_home/lib"; fi
}

# Whether the dynamic loader can find a real libcuda.so.1 (the driver).
_aifr_cuda_have_driver() {
    ldconfig -p 2>/dev/null | grep -q 'libcuda\.so\.1 ' && return 0
    local d
    for d in ${LD_LIBRARY_PATH:+${LD_LIBRARY_PATH//:/ }} /usr/local/nvidia/lib64 /usr/local/nvidia/lib; do
        [ -e "$d/libcuda.so.1" ] && [ "$(readlink -f "$d")" != "$(readlink -f "$_aifr_cuda_dir/nodriver")" ] && return 0
    done
    return 1
}

# Exports for the build into the current (sub)shell.
_aifr_cuda_export() {
    export CUDA_HOME=$_aifr_cuda_home CUDA_COMPUTE_CAP=$_aifr_cuda_cap
    case ":$PATH:" in *":$_aifr_cuda_home/bin:"*) ;; *) export PATH="$_aifr_cuda_home/bin:$PATH" ;; esac
    if [ -n "$_aifr_cuda_link_stub" ]; then
        export LIBRARY_PATH="$_aifr_cuda_link_stub${LIBRARY_PATH:+:$LIBRARY_PATH}"
    fi
}

_aifr_cuda_summary() {
    _aifr_cuda_say "CUDA_HOME=$_aifr_cuda_home (nvcc $(_aifr_cuda_nvcc_version "$_aifr_cuda_home/bin/nvcc")), CUDA_COMPUTE_CAP=$_aifr_cuda_cap${CUDNN:+, CUDNN=$CUDNN}"
}

_aifr_cuda_self=${BASH_SOURCE[0]}
_aifr_cuda_repo=$(cd "$(dirname "$_aifr_cuda_self")/.." && pwd)
_aifr_cuda_dir=${AIFR_CUDA_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/aifr-eval/cuda13}

if [ "${BASH_SOURCE[0]}" != "$0" ]; then
    # Sourced: prepare, then export into the caller's shell. No `set -e` here: it would stay on
    # in the caller's shell.
    case ${1:-} in
    -h | --help | help) _aifr_cuda_usage ;;
    *)
        if _aifr_cuda_prepare; then
            _aifr_cuda_export
            _aifr_cuda_summary
            _aifr_cuda_say "now: cargo build --release --locked --features cuda${CUDNN:+ (CUDNN=1: add --features candle-core/cudnn)}"
        else
            false
        fi
        ;;
    esac
    return
fi

set -uo pipefail
cmd=${1:-}
[ $# -gt 0 ] && shift
case $cmd in
-h | --help | help)
    _aifr_cuda_usage
    ;;
prepare)
    _aifr_cuda_prepare || exit 1
    _aifr_cuda_summary
    echo "run-time libraries: $(_aifr_cuda_runtime_dirs)" >&2
    ;;
env)
    _aifr_cuda_prepare || exit 1
    printf 'export CUDA_HOME=%q\n' "$_aifr_cuda_home"
    printf 'export CUDA_COMPUTE_CAP=%q\n' "$_aifr_cuda_cap"
    printf 'export PATH=%q:"$PATH"\n' "$_aifr_cuda_home/bin"
    [ -n "$_aifr_cuda_link_stub" ] && printf 'export LIBRARY_PATH=%q"${LIBRARY_PATH:+:$LIBRARY_PATH}"\n' "$_aifr_cuda_link_stub"
    printf '# to run a cuda binary on a GPU machine: export LD_LIBRARY_PATH=%q:"$LD_LIBRARY_PATH"\n' "$(_aifr_cuda_runtime_dirs)"
    ;;
libdir)
    _aifr_cuda_prepare || exit 1
    _aifr_cuda_runtime_dirs
    ;;
run)
    if [ $# -eq 0 ]; then
        _aifr_cuda_say "run: which command? (scripts/cuda-toolchain.sh run target/release/aifr-eval --version)"
        exit 2
    fi
    _aifr_cuda_prepare || exit 1
    ld=$(_aifr_cuda_runtime_dirs)
    if [ "${CUDNN:-0}" = 1 ] && [ -e "$ld/libcudnn.so.9" ]; then ld="$ld:$(dirname "$(readlink -f "$ld/libcudnn.so.9")")"; fi
    if ! _aifr_cuda_have_driver; then
        _aifr_cuda_say "no NVIDIA driver found: using the stub libcuda.so.1 (no GPU will be usable)"
        ld="$ld:$_aifr_cuda_dir/nodriver"
    fi
    export LD_LIBRARY_PATH="$ld${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
    exec "$@"
    ;;
build)
    if ! command -v cargo >/dev/null 2>&1; then
        _aifr_cuda_say "cargo not found: install Rust (https://rustup.rs) first"
        exit 1
    fi
    cd "$_aifr_cuda_repo" || exit 1
    # The stub is made from cudarc's sources: fetch them first.
    cargo fetch --locked || exit 1
    _aifr_cuda_prepare || exit 1
    _aifr_cuda_export
    _aifr_cuda_summary
    features=(--features cuda)
    [ "${CUDNN:-0}" = 1 ] && features+=(--features candle-core/cudnn)
    _aifr_cuda_say "cargo build --release --locked ${features[*]} $*"
    cargo build --release --locked "${features[@]}" "$@" || exit 1
    _aifr_cuda_say "built. Run it where the CUDA libraries are: see docs/cuda.md ('Running')."
    ;;
"")
    _aifr_cuda_usage
    exit 2
    ;;
*)
    _aifr_cuda_say "unknown command '$cmd' (try --help)"
    exit 2
    ;;
esac
