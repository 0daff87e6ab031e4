# Sourced by .ci/wheels and .ci/test-wheels: the CPython interpreters to build
# and test wheels for. find_python 3.12 prints pyenv's newest 3.12.x (or the
# python3.12 on PATH) and fails when there is none.
wheel_pythons=${TIDELOG_WHEEL_PYTHONS:-"3.11 3.12 3.13"}

find_python() {
  local version=$1 pyroot candidate
  pyroot=$(pyenv root 2>/dev/null || echo "${PYENV_ROOT:-$HOME/.pyenv}")
  for candidate in $(ls -d "$pyroot"/versions/"$version".* 2>/dev/null | sort -V -r); do
    if [[ -x $candidate/bin/python$version ]]; then echo "$candidate/bin/python$version"; return 0; fi
  done
  command -v "python$version"
}
