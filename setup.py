"""Build the compiled core of pyconvnet.

The extensions are cythonized and compiled with -O3 (/O2 with MSVC).
-march=native is never used: a wheel must run on any CPU of its platform.
Instead, on x86-64 the kernels that gain from wider vectors are compiled
once per instruction set -- ``pyconvnet/_kernels/conv_im2col_{generic,avx2,
avx512}``, and the same for every module of kernels (Winograd, dense,
pooling, batch norm, optimizers), each from one source, with the flags of
ISA_FLAGS (and
-ffp-contract=off, so that every build gives the same bits) -- and
``pyconvnet._kernels`` runs the best one the CPU supports, checked at
import. A compiler that refuses an instruction set's flags leaves that build
out (the others still work); other architectures build the generic one only.

OpenMP is used when the compiler this build uses -- the one setuptools
configured, with CC, CFLAGS, CPPFLAGS and LDFLAGS applied -- can compile, link
and run a small OpenMP program (the probe below, modelled on scikit-learn's
build helpers). The flag is the compiler's own: ``/openmp`` for MSVC,
``-fopenmp`` for gcc and clang. Apple's clang takes OpenMP only through the
preprocessor; as in scikit-learn, a macOS build with libomp passes it in the
environment::

    export CPPFLAGS="$CPPFLAGS -Xpreprocessor -fopenmp"
    export CFLAGS="$CFLAGS -I$(brew --prefix libomp)/include"
    export LDFLAGS="$LDFLAGS -L$(brew --prefix libomp)/lib -lomp"

and the probe then adds no flag of its own. When cross-compiling (the target
platform, ``_PYTHON_HOST_PLATFORM``, is not this machine's, or
``PYCONVNET_CROSS_COMPILING=1``) the probe only compiles and links: a program
built for another machine cannot run here.

Environment switches:

- ``PYCONVNET_NO_OPENMP=1``: build serially on purpose (every kernel on one
  core; ``pyconvnet.openmp_enabled()`` is then False).
- ``PYCONVNET_FAIL_NO_OPENMP=1``: a build that cannot use OpenMP is an error,
  not a warning (release jobs set it, so a serial wheel is never published).
- ``PYCONVNET_BOUNDSCHECK=1``: Cython's bounds and wraparound checks on, to
  catch indexing bugs that the fast build would hide.
"""
import os
import platform
import runpy
import shutil
import subprocess
import sys
import tempfile
import textwrap

import numpy as np
from Cython.Build import cythonize
from setuptools import Extension, setup
from setuptools.command.build_ext import build_ext

OPENMP_PROBE = textwrap.dedent(
    """
    #include <omp.h>
    #include <stdio.h>
    int main(void) {
        int n = 0;
        #pragma omp parallel reduction(+:n)
        n += 1;
        printf("openmp=%d\\n", n > 0 && omp_get_max_threads() > 0);
        return 0;
    }
    """
)

KERNELS = "pyconvnet/_kernels"
# The one list of kernel modules (read without importing the package, which
# needs them built).
_MODULES = runpy.run_path(os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                       KERNELS, "modules.py"))
EXTENSIONS = list(_MODULES["MODULES"])
# Built once per instruction set: <name>_generic, <name>_avx2, ...
ISA_EXTENSIONS = list(_MODULES["ISA_MODULES"])

# The instruction-set builds: name -> (gcc/clang flags, MSVC flags). avx512
# is x86-64-v4's set (F, CD, BW, DQ, VL), which runtime.cpu_instruction_sets
# checks as a whole.
ISA_FLAGS = {
    "generic": ([], []),
    "avx2": (["-mavx2", "-mfma", "-ffp-contract=off"], ["/arch:AVX2", "/fp:precise"]),
    "avx512": (["-mavx2", "-mfma", "-mavx512f", "-mavx512cd", "-mavx512bw",
                "-mavx512dq", "-mavx512vl", "-ffp-contract=off"],
               ["/arch:AVX512", "/fp:precise"]),
}
assert tuple(ISA_FLAGS) == _MODULES["ISAS"], "modules.py and ISA_FLAGS disagree"


def _write_stubs():
    """The .pyx file of each instruction-set build: an include of its
    source, generated from the list (written only when it changes, so that
    an unchanged one is not rebuilt)."""
    for base in ISA_EXTENSIONS:
        for isa in ISA_FLAGS:
            path = os.path.join(KERNELS, f"{base}_{isa}.pyx")
            text = _MODULES["stub_source"](base, isa)
            if not os.path.exists(path) or open(path).read() != text:
                with open(path, "w") as f:
                    f.write(text)


def _flag(name):
    return os.environ.get(name, "").strip() not in ("", "0")


def _cross_compiling():
    if _flag("PYCONVNET_CROSS_COMPILING"):
        return True
    host = os.environ.get("_PYTHON_HOST_PLATFORM")
    # e.g. "macosx-11.0-arm64" on an x86_64 machine.
    return bool(host) and not host.endswith(platform.machine())


def _target_is_x86():
    host = os.environ.get("_PYTHON_HOST_PLATFORM") or platform.machine()
    return any(name in host.lower() for name in ("x86_64", "amd64", "x86", "i686"))


def _isa_of(module):
    """The instruction set a module is built for (conv_im2col_avx2:
    "avx2"), or None for the modules built once."""
    name = module.rsplit(".", 1)[-1]
    for base in ISA_EXTENSIONS:
        if name.startswith(base + "_"):
            return name[len(base) + 1:]
    return None


def _compiles(compiler, flags):
    """Whether ``compiler`` compiles a small C file with ``flags``."""
    tmp = tempfile.mkdtemp()
    try:
        src = os.path.join(tmp, "isa.c")
        with open(src, "w") as f:
            f.write("int main(void) { return 0; }\n")
        compiler.compile([src], output_dir=tmp, extra_postargs=flags)
        return True
    except Exception:  # a CompileError: the compiler does not know the flags
        return False
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _openmp_flag(compiler):
    """The compile-and-link flag that turns OpenMP on for this compiler."""
    if compiler.compiler_type == "msvc":
        return ["/openmp"]
    if sys.platform == "darwin" and "openmp" in os.environ.get("CPPFLAGS", ""):
        # Apple clang: OpenMP comes from CPPFLAGS/LDFLAGS (module docstring).
        return []
    return ["-fopenmp"]


def _ldflags_for_executable():
    # link_executable does not apply LDFLAGS (only shared-library links do);
    # the library paths and libraries in it are needed to link the probe.
    flags = os.environ.get("LDFLAGS", "").split()
    keep = ("-L", "-l", "-Wl,-rpath", "-Wl,--sysroot=", "-fopenmp")
    return [f for f in flags if f.startswith(keep)]


def probe_openmp(compiler):
    """Return the OpenMP flags for ``compiler``, or (None, reason)."""
    flag = _openmp_flag(compiler)
    tmp = tempfile.mkdtemp()
    cwd = os.getcwd()
    try:
        os.chdir(tmp)
        with open("probe.c", "w") as f:
            f.write(OPENMP_PROBE)
        objects = compiler.compile(["probe.c"], output_dir="objects",
                                   extra_postargs=flag)
        compiler.link_executable(objects, "probe",
                                 extra_preargs=_ldflags_for_executable(),
                                 extra_postargs=flag)
        if _cross_compiling():
            return flag, "compiled and linked (cross-compiling: not run)"
        exe = os.path.join(tmp, "probe" + (compiler.exe_extension or ""))
        out = subprocess.run([exe], check=True, capture_output=True, text=True)
        if "openmp=1" not in out.stdout:
            return None, f"the probe printed {out.stdout!r}"
        return flag, "compiled, linked and ran"
    except Exception as exc:  # a CompileError, LinkError or a failed run
        return None, f"{type(exc).__name__}: {exc}"
    finally:
        os.chdir(cwd)
        shutil.rmtree(tmp, ignore_errors=True)


class BuildExt(build_ext):
    """build_ext that decides optimisation and OpenMP flags per compiler."""

    def build_extensions(self):
        msvc = self.compiler.compiler_type == "msvc"
        # -fno-math-errno: sqrt need not set errno, so loops calling it
        # vectorise (nothing here reads errno).
        args = ["/O2"] if msvc else ["-O3", "-fno-math-errno"]
        if _flag("PYCONVNET_NO_OPENMP"):
            omp, why = None, "PYCONVNET_NO_OPENMP is set"
        else:
            omp, why = probe_openmp(self.compiler)
        if omp is None:
            message = (
                "pyconvnet: cannot build with OpenMP (" + why + "); building "
                "WITHOUT OpenMP: every kernel will run on a single core. On "
                "macOS install libomp and set CPPFLAGS/CFLAGS/LDFLAGS as "
                "setup.py's docstring shows."
            )
            if _flag("PYCONVNET_FAIL_NO_OPENMP"):
                raise RuntimeError(message + " PYCONVNET_FAIL_NO_OPENMP is set.")
            print("\n*** " + message + " ***\n", file=sys.stderr)
            omp = []
        else:
            print(f"pyconvnet: OpenMP flags {omp} ({why})", file=sys.stderr)
        kept = []
        for ext in self.extensions:
            isa = _isa_of(ext.name)
            isa_flags = [] if isa is None else ISA_FLAGS[isa][1 if msvc else 0]
            if isa_flags and not _compiles(self.compiler, isa_flags):
                print(f"pyconvnet: the compiler refuses {isa_flags}: the {isa} "
                      "kernels are not built", file=sys.stderr)
                continue
            ext.extra_compile_args = args + omp + isa_flags
            ext.extra_link_args = list(omp)
            kept.append(ext)
        self.extensions = kept
        # Always compile: setuptools reuses a module in build/ whose sources
        # are older, whatever flags built it (a serial build would then ship
        # the OpenMP modules of an earlier build, or the other way round).
        self.force = True
        super().build_extensions()


def extensions():
    _write_stubs()
    macros = [("NPY_NO_DEPRECATED_API", "NPY_1_9_API_VERSION")]
    exts = [
        Extension(
            f"pyconvnet._kernels.{name}",
            [f"{KERNELS}/{name}.pyx"],
            include_dirs=[np.get_include()],
            define_macros=macros,
        )
        for name in EXTENSIONS
    ]
    for base in ISA_EXTENSIONS:
        for isa in ISA_FLAGS if _target_is_x86() else ["generic"]:
            exts.append(Extension(f"pyconvnet._kernels.{base}_{isa}",
                                  [f"{KERNELS}/{base}_{isa}.pyx"],
                                  include_dirs=[np.get_include()],
                                  define_macros=macros))
    checks = _flag("PYCONVNET_BOUNDSCHECK")
    directives = {
        "language_level": 3,
        "boundscheck": checks,
        "wraparound": checks,
        "initializedcheck": checks,
        "cdivision": True,
        "embedsignature": True,
    }
    # force: the C files of a build with other directives must not be reused.
    return cythonize(exts, compiler_directives=directives, force=checks)


setup(ext_modules=extensions(), cmdclass={"build_ext": BuildExt})
