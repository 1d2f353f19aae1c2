"""Check a built wheel's contents and metadata; exit non-zero on a problem.

python .ci/check_wheel.py WHEEL [--manylinux]

- no generated C (``.c``) inside;
- the license file shipped, and the metadata's License-Expression;
- every runtime dependency the code imports declared (threadpoolctl among
  them);
- an x86-64 wheel holds the kernels of every instruction set (generic, avx2,
  avx512), so that a wheel built for the baseline runs the fast ones where
  the CPU has them;
- with --manylinux: a manylinux platform tag and the OpenMP runtime vendored
  (``pyconvnet.libs/libgomp*``), as ``auditwheel repair`` makes it.
"""
import os
import runpy
import sys
import zipfile
from email.parser import Parser

# The one list of kernel modules, read from the source tree.
MODULES = runpy.run_path(os.path.join(os.path.dirname(os.path.abspath(__file__)), "..",
                                      "pyconvnet", "_kernels", "modules.py"))


def main(argv):
    path, manylinux = argv[0], "--manylinux" in argv[1:]
    problems = []
    with zipfile.ZipFile(path) as wheel:
        names = wheel.namelist()
        meta_name = next(n for n in names if n.endswith(".dist-info/METADATA"))
        meta = Parser().parsestr(wheel.read(meta_name).decode())
        tags = wheel.read(meta_name.replace("METADATA", "WHEEL")).decode()
    c_files = [n for n in names if n.endswith(".c")]
    if c_files:
        problems.append(f"generated C in the wheel: {c_files}")
    if not any(n.endswith(".dist-info/licenses/LICENSE") for n in names):
        problems.append("no license file in the wheel")
    if meta.get("License-Expression") != "BSD-3-Clause":
        problems.append(f"License-Expression is {meta.get('License-Expression')!r}")
    required = {r.split(";")[0].split(">")[0].split("=")[0].strip()
                for r in meta.get_all("Requires-Dist") or [] if "extra ==" not in r}
    missing = {"numpy", "scipy", "scikit-learn", "threadpoolctl"} - required
    if missing:
        problems.append(f"undeclared runtime dependencies: {sorted(missing)}")
    if "x86_64" in tags or "amd64" in tags.lower():
        for module in MODULES["ISA_MODULES"]:
            for isa in MODULES["ISAS"]:
                if not any(n.startswith(f"pyconvnet/_kernels/{module}_{isa}.") and
                           n.endswith((".so", ".pyd")) for n in names):
                    problems.append(f"no {isa} build of {module} in the wheel")
    if manylinux:
        if "manylinux_" not in tags:
            problems.append(f"not a manylinux wheel: {tags!r}")
        if not any(n.startswith("pyconvnet.libs/libgomp") for n in names):
            problems.append("the OpenMP runtime is not vendored")
    for problem in problems:
        print(f"{path}: {problem}", file=sys.stderr)
    if not problems:
        print(f"{path}: ok ({len(names)} files, requires {sorted(required)})")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
