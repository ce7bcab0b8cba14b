#!/usr/bin/env sh
# Print the path of a Python >= 3.12 interpreter, or explain what to install.
# Order: python3.13 / python3.12 on PATH (that really run: a pyenv shim may not),
# then ~/.pyenv/versions/3.1x.
for candidate in python3.13 python3.12 python3; do
  path=$(command -v "$candidate" 2>/dev/null) || continue
  if "$path" -c 'import sys; sys.exit(0 if sys.version_info >= (3, 12) else 1)' >/dev/null 2>&1; then
    "$path" -c 'import sys; print(sys.executable)'
    exit 0
  fi
done
for path in $(ls -d "$HOME"/.pyenv/versions/3.*/bin/python3 2>/dev/null | sort -rV); do
  if [ -x "$path" ] && "$path" -c 'import sys; sys.exit(0 if sys.version_info >= (3, 12) else 1)' >/dev/null 2>&1; then
    echo "$path"
    exit 0
  fi
done
echo "llm-usage needs Python >= 3.12 (mitmproxy 12 requires it): install python3.12 or python3.13" \
     "(e.g. 'apt-get install python3.12', 'brew install python@3.13' or 'pyenv install 3.13')" >&2
exit 1
