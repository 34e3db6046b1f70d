#!/usr/bin/env bash
# Build the unetgui one-folder bundle with PyInstaller and smoke-test it.
#
#   installer/build.sh [--archive] [--no-smoke] [--no-build] [--clean]
#
#   --archive   also write $BUILD_DIR/unetgui-<version>-linux-<arch>.tar.gz (after the smoke tests pass)
#   --no-smoke  skip the smoke tests
#   --no-build  only smoke-test (and archive) the bundle already in $BUILD_DIR/dist
#   --clean     empty PyInstaller's cache and work folder first
#
# Environment:
#   BUILD_DIR   where dist/ and work/ go (default /work/build; never inside the repository)
#   PYTHON      the Python of the build venv (default: python3 on PATH, e.g. an activated venv)
#   DATA_DIR    shared test data for the `info` smoke test (default <repo>/../shared/data)
#
# Build venv (once), from the repository root:
#   python3 -m venv /work/buildvenv
#   /work/buildvenv/bin/pip install -c constraints.txt torch==2.13.0 -e . pyinstaller   (the versions CI tested)
#   PYTHON=/work/buildvenv/bin/python installer/build.sh --archive
# (torch==2.13.0 gives the CPU wheel on Linux where the index has it; a CUDA torch makes a ~4 GB bundle.)
#
# Result: $BUILD_DIR/dist/unetgui/unetgui (+ _internal/), and with --archive
# $BUILD_DIR/unetgui-<version>-linux-x86_64.tar.gz. The last step, `unetgui --self-test` offscreen,
# is the acceptance check: the script fails when it fails.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(cd "$here/.." && pwd)"
BUILD_DIR="${BUILD_DIR:-/work/build}"
PYTHON="${PYTHON:-python3}"
DATA_DIR="${DATA_DIR:-$repo/../shared/data}"
archive=0 smoke=1 build=1 clean=()
for arg in "$@"; do
    case "$arg" in
        --archive) archive=1 ;;
        --no-smoke) smoke=0 ;;
        --no-build) build=0 ;;
        --clean) clean=(--clean) ;;
        -h|--help) sed -n '2,26p' "$0"; exit 0 ;;
        *) echo "unknown option: $arg" >&2; exit 2 ;;
    esac
done

case "$(realpath -m "$BUILD_DIR")/" in
    "$repo"/*) echo "BUILD_DIR must be outside the repository ($repo)" >&2; exit 2 ;;
esac
mkdir -p "$BUILD_DIR"
dist="$BUILD_DIR/dist"
work="$BUILD_DIR/work"
app="$dist/unetgui/unetgui"

"$PYTHON" -c "import PyInstaller, torch, PySide6, unetgui" \
    || { echo "PYTHON=$PYTHON lacks pyinstaller/torch/PySide6/unetgui (see the header of $0)" >&2; exit 2; }
version="$("$PYTHON" -c "import unetgui; print(unetgui.__version__)")"

if [[ $build == 1 ]]; then
    echo "== building unetgui $version with PyInstaller $("$PYTHON" -m PyInstaller --version) (python: $PYTHON) into $dist"
    start=$(date +%s)
    "$PYTHON" -m PyInstaller --noconfirm "${clean[@]}" --log-level WARN \
        --distpath "$dist" --workpath "$work" "$here/unetgui.spec"
    echo "== build time: $(( $(date +%s) - start )) s"
fi
[[ -x "$app" ]] || { echo "no bundle at $app" >&2; exit 1; }
# the Linux installer travels inside the bundle (and so inside the tarball): unetgui/install-linux.sh
install -m 755 "$here/install-linux.sh" "$dist/unetgui/install-linux.sh"
install -m 644 "$here/unetgui.desktop" "$here/unetgui-mime.xml" "$dist/unetgui/"
echo "== bundle size: $(du -sh "$dist/unetgui" | cut -f1) ($dist/unetgui)"

if [[ $smoke == 1 ]]; then
    export QT_QPA_PLATFORM="${QT_QPA_PLATFORM:-offscreen}" LANG="${LANG:-C.UTF-8}" PYTHONFAULTHANDLER=1
    # a first run: settings, recent files and caches of the build user stay untouched
    smokehome="$BUILD_DIR/smoke-home"
    rm -rf "$smokehome" && mkdir -p "$smokehome"
    export XDG_CONFIG_HOME="$smokehome/config" XDG_DATA_HOME="$smokehome/data" XDG_CACHE_HOME="$smokehome/cache"
    echo "== smoke: --version"
    "$app" --version

    # a small series for `info`: the 3-slice CT (implicit VR), the 20-slice J2K CT (openjpeg decoder)
    for series in dcmqi-ct-3slice-liver-seg/ct totalsegmentator-example-ct-dicom/dicom; do
        if [[ -d "$DATA_DIR/$series" ]]; then
            echo "== smoke: info $DATA_DIR/$series"
            "$app" info "$DATA_DIR/$series"
            echo "== smoke: convert $series to NIfTI (decodes the pixels)"
            "$app" convert --input "$DATA_DIR/$series" --output "$BUILD_DIR/smoke-$(basename "$(dirname "$series")").nii.gz"
        else
            echo "== smoke: skipped info $series (no $DATA_DIR/$series)"
        fi
    done

    echo "== smoke: the window starts offscreen (runs 15 s, then is stopped)"
    rc=0
    timeout 15 "$app" 2> "$BUILD_DIR/gui-stderr.txt" || rc=$?
    if [[ $rc != 124 ]]; then
        cat "$BUILD_DIR/gui-stderr.txt" >&2
        echo "the window exited by itself with code $rc" >&2
        exit 1
    fi
    if grep -E "Traceback|ModuleNotFoundError|ImportError" "$BUILD_DIR/gui-stderr.txt"; then
        echo "import errors while the window ran (see $BUILD_DIR/gui-stderr.txt)" >&2
        exit 1
    fi

    echo "== smoke: --self-test (acceptance check)"
    timeout 600 "$app" --self-test
    echo "== smoke tests passed"
fi

if [[ $archive == 1 ]]; then
    tarball="$BUILD_DIR/unetgui-$version-linux-$(uname -m).tar.gz"
    echo "== archive: $tarball"
    tar -C "$dist" -czf "$tarball" unetgui
    echo "== archive size: $(du -sh "$tarball" | cut -f1)"
fi
