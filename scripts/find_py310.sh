# Sourced by the Python 3.10 scripts: find_py310 prints a working python3.10.
# `command -v python3.10` is not enough on pyenv machines: the shim exists but
# fails unless 3.10 is the active version, so each candidate is run to check it.
find_py310() {
    local root="${PYENV_ROOT:-${HOME:-/root}/.pyenv}" c
    command -v pyenv >/dev/null 2>&1 && root="$(pyenv root)"
    for c in "${PYTHON310:-}" "$root"/versions/3.10*/bin/python3.10 /usr/local/bin/python3.10 \
             /usr/bin/python3.10; do
        [ -n "$c" ] && [ -x "$c" ] || continue
        if "$c" -c 'import sys; sys.exit(sys.version_info[:2] != (3, 10))' 2>/dev/null; then
            echo "$c"; return 0
        fi
    done
    return 1
}
