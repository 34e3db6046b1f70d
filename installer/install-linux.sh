#!/usr/bin/env bash
# Install (or remove) the unetgui bundle for the current user, with a desktop launcher.
#
#   install-linux.sh [--bundle DIR] [--prefix PREFIX]     install
#   install-linux.sh --uninstall [--prefix PREFIX]        remove everything this script installed
#
# PREFIX defaults to ~/.local (no root needed; /usr/local or /opt-style prefixes work as root). Installs:
#   PREFIX/opt/unetgui/                                   the one-folder bundle (replaced on reinstall)
#   PREFIX/bin/unetgui                                    symlink, for the command line
#   PREFIX/share/applications/unetgui.desktop             launcher, Exec= the absolute path of the bundle
#   PREFIX/share/icons/hicolor/scalable/apps/unetgui.svg  icon
#   PREFIX/share/mime/packages/unetgui-nifti.xml          the NIfTI file type (*.nii, *.nii.gz)
# The bundle is taken from --bundle, else from the folder this script is in when that is a bundle
# (an unpacked release tarball ships the script inside unetgui/), else $BUILD_DIR/dist/unetgui
# (BUILD_DIR defaults to /work/build, as in build.sh).
# The target machine needs libgl1 and libegl1 (present on any desktop install).
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
PREFIX="${PREFIX:-$HOME/.local}"
bundle=""
uninstall=0
while [[ $# -gt 0 ]]; do
    case "$1" in
        --bundle) bundle="$2"; shift 2 ;;
        --prefix) PREFIX="$2"; shift 2 ;;
        --uninstall) uninstall=1; shift ;;
        -h|--help) sed -n '2,17p' "$0"; exit 0 ;;
        *) echo "unknown option: $1" >&2; exit 2 ;;
    esac
done
PREFIX="$(realpath -m "$PREFIX")"
opt="$PREFIX/opt/unetgui"
share="$PREFIX/share"
desktop="$share/applications/unetgui.desktop"
icon="$share/icons/hicolor/scalable/apps/unetgui.svg"
mime="$share/mime/packages/unetgui-nifti.xml"
link="$PREFIX/bin/unetgui"

refresh() {  # best effort: menus and file associations pick the changes up without a new login
    command -v update-desktop-database >/dev/null && update-desktop-database -q "$share/applications" || true
    command -v update-mime-database >/dev/null && update-mime-database "$share/mime" >/dev/null 2>&1 || true
    # refresh an icon cache that exists (system prefixes); never create one in a user's folder, where a
    # later stale cache would hide other applications' icons
    if [[ -f "$share/icons/hicolor/icon-theme.cache" ]] && command -v gtk-update-icon-cache >/dev/null; then
        gtk-update-icon-cache -q -t "$share/icons/hicolor" || true
    elif [[ -d "$share/icons/hicolor" ]]; then
        touch "$share/icons/hicolor"
    fi
}

if [[ $uninstall == 1 ]]; then
    [[ -L "$link" ]] && rm -f "$link"
    rm -rf "$opt"
    rm -f "$desktop" "$icon" "$mime"
    refresh
    echo "removed unetgui from $PREFIX (kept: settings in ~/.config/unetgui, untitled projects and sample copies in ~/.local/share/unetgui)"
    exit 0
fi

if [[ -z "$bundle" ]]; then
    if [[ -x "$here/unetgui" && -d "$here/_internal" ]]; then
        bundle="$here"
    else
        bundle="${BUILD_DIR:-/work/build}/dist/unetgui"
    fi
fi
bundle="$(realpath -m "$bundle")"
[[ -x "$bundle/unetgui" && -d "$bundle/_internal" ]] \
    || { echo "no unetgui bundle at $bundle (build it with installer/build.sh, or pass --bundle DIR)" >&2; exit 1; }
case "$opt/" in "$bundle"/*) echo "cannot install a bundle into itself" >&2; exit 2 ;; esac

# the template: next to this script (repository or tarball), else shipped inside the bundle
template="$here/unetgui.desktop"
[[ -f "$template" ]] || template="$bundle/unetgui.desktop"
svg="$bundle/_internal/resources/unetgui.svg"
[[ -f "$svg" ]] || svg="$here/../resources/unetgui.svg"
mimexml="$here/unetgui-mime.xml"
[[ -f "$mimexml" ]] || mimexml="$bundle/unetgui-mime.xml"

echo "installing $bundle -> $opt"
mkdir -p "$PREFIX/opt" "$PREFIX/bin" "$(dirname "$desktop")" "$(dirname "$icon")" "$(dirname "$mime")"
tmp="$opt.new.$$"
rm -rf "$tmp"
cp -a "$bundle" "$tmp"
rm -rf "$opt"
mv "$tmp" "$opt"
ln -sfn "$opt/unetgui" "$link"

exe="$opt/unetgui"
quoted="$exe"
[[ "$exe" == *[[:space:]]* ]] && quoted="\"$exe\""  # Desktop Entry spec: quote paths with spaces
sed -e "s|^Exec=.*|Exec=$quoted %F|" -e "s|^TryExec=.*|TryExec=$exe|" "$template" > "$desktop"
chmod 644 "$desktop"
if [[ -f "$svg" ]]; then install -m 644 "$svg" "$icon"; else echo "warning: no icon found" >&2; fi
if [[ -f "$mimexml" ]]; then install -m 644 "$mimexml" "$mime"; fi
refresh

echo "installed unetgui $("$exe" --version 2>/dev/null | awk '{print $2}')"
echo "  launcher: $desktop (application menu; double-click it in a file manager too)"
echo "  command:  $link (put $PREFIX/bin on PATH for 'unetgui info ...')"
remover="$0"
[[ -x "$opt/install-linux.sh" ]] && remover="$opt/install-linux.sh"  # the bundle carries a copy of this script
prefix_arg=""
[[ "$PREFIX" != "$(realpath -m "$HOME/.local")" ]] && prefix_arg=" --prefix '$PREFIX'"
echo "  remove:   $remover --uninstall$prefix_arg"
