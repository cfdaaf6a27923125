#!/usr/bin/env bash
# Install vidclass with every extra and its test tools into the current Python, fetch the
# default model's weights, and install Debian's chromium for the page's tests.
#
#   ./install.sh               the versions in locks/ (those the test suite last passed with)
#   ./install.sh --latest      the newest releases pyproject.toml allows (VIDCLASS_LATEST=1 too)
#   ./install.sh --write-lock  write what this Python has installed into its lock file
#                              (after a --latest install whose tests passed), nothing else
#
# The CPU build of PyTorch (torch==2.13.0) goes in first where no torch is present, so
# that pip never pulls a CUDA build with gigabytes of extra packages.
set -euo pipefail
cd "$(dirname "$0")"
PYTHON=${PYTHON:-python3}
EXTRAS="torch,export,hf,plot,train,serve,ray,search,openvino,onnxruntime,int8,docs,test"
LATEST=${VIDCLASS_LATEST:-0}
WRITE_LOCK=0
for arg in "$@"; do
    case "$arg" in
        --latest) LATEST=1 ;;
        --write-lock) WRITE_LOCK=1 ;;
        -h|--help) sed -n '2,11p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
        *) echo "install.sh: unknown option $arg (see --help)" >&2; exit 2 ;;
    esac
done
# One lock per Python minor version: wheels (numpy's, for one) differ between them.
PYVER=$("$PYTHON" -c 'import sys; print(f"{sys.version_info[0]}.{sys.version_info[1]}")')
LOCK="locks/python$PYVER.txt"

if [ "$WRITE_LOCK" = 1 ]; then
    {
        echo "# Exact versions for Python $PYVER that the test suite passed with; ./install.sh"
        echo "# installs these. Move them forward: ./install.sh --latest, python3 -m pytest,"
        echo "# then ./install.sh --write-lock (see CONTRIBUTING.md)."
        # Local version labels (torch's +cpu) are dropped: the label names the build, and
        # install.sh picks the CPU build itself.
        "$PYTHON" -m pip freeze --exclude-editable --all \
            | grep -vE '^(pip|wheel|vidclass)==' | sed -E 's/\+[A-Za-z0-9.]+$//' | LC_ALL=C sort -f
    } > "$LOCK.partial"
    mv "$LOCK.partial" "$LOCK"
    echo "install.sh: wrote $LOCK ($(grep -c '==' "$LOCK") packages)"
    exit 0
fi

CONSTRAINTS=()
if [ "$LATEST" = 1 ]; then
    echo "install.sh: installing the newest releases pyproject.toml allows (not the lock)"
elif [ -f "$LOCK" ]; then
    CONSTRAINTS=(-c "$LOCK")
else
    echo "install.sh: warning: no lock for Python $PYVER ($LOCK); installing the newest" \
        "releases, which the tests may not have passed with (locks/ has those of other" \
        "Python versions)" >&2
fi

if ! "$PYTHON" -c "import torch" 2>/dev/null; then
    "$PYTHON" -m pip install "${CONSTRAINTS[@]}" "torch==2.13.0"
fi
"$PYTHON" -m pip install "${CONSTRAINTS[@]}" -e ".[$EXTRAS]"
"$PYTHON" -m vidclass models pull
# The web page's tests drive Debian's chromium through Playwright (never a downloaded browser).
if [ ! -x /usr/bin/chromium ] && command -v apt-get >/dev/null; then
    SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"
    $SUDO apt-get install -y --no-install-recommends chromium >/dev/null \
        || { $SUDO apt-get update >/dev/null && $SUDO apt-get install -y --no-install-recommends chromium >/dev/null; } \
        || echo "install.sh: warning: could not install chromium; tests/test_page.py will skip" >&2
fi
