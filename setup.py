"""Build the compiled core of pyconvnet.

The extensions are cythonized with -O3. OpenMP is used when the compiler can
compile, link *and run* a small OpenMP program (the probe below, modelled on
scikit-learn's build helpers); otherwise the package builds serially and says
so loudly, since every kernel then runs on one core. -march=native is never
used: a wheel must run on any CPU of its platform.

PYCONVNET_BOUNDSCHECK=1 builds with Cython's bounds and wraparound checks on,
to catch indexing bugs that the fast build would hide.
"""
import os
import shutil
import subprocess
import sys
import sysconfig
import tempfile
import textwrap
import warnings

import numpy as np
from Cython.Build import cythonize
from setuptools import Extension, setup

OPENMP_PROBE = textwrap.dedent(
    """
    #include <omp.h>
    #include <stdio.h>
    int main(void) {
        int n = 0;
        #pragma omp parallel reduction(+:n)
        n += 1;
        printf("%d", n > 0 && omp_get_max_threads() > 0);
        return 0;
    }
    """
)


def _openmp_flags():
    """Return (compile_args, link_args) for OpenMP, or None if it cannot run."""
    if os.environ.get("PYCONVNET_NO_OPENMP"):
        return None
    if sys.platform == "win32":
        flags = (["/openmp"], [])
    else:
        flags = (["-fopenmp"], ["-fopenmp"])
    cc = os.environ.get("CC") or sysconfig.get_config_var("CC") or "cc"
    cc = cc.split()
    tmp = tempfile.mkdtemp()
    try:
        src = os.path.join(tmp, "probe.c")
        exe = os.path.join(tmp, "probe")
        with open(src, "w") as f:
            f.write(OPENMP_PROBE)
        subprocess.run(
            cc + flags[0] + [src, "-o", exe] + flags[1],
            check=True,
            capture_output=True,
        )
        out = subprocess.run([exe], check=True, capture_output=True, text=True)
        if out.stdout.strip() != "1":
            return None
        return flags
    except (OSError, subprocess.CalledProcessError):
        return None
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def extensions():
    omp = _openmp_flags()
    # -fno-math-errno: sqrt need not set errno, so loops calling it vectorise
    # (nothing here reads errno).
    compile_args = (["-O3", "-fno-math-errno"] if sys.platform != "win32"
                    else ["/O2"])
    link_args = []
    if omp is None:
        warnings.warn(
            "\n\n*** pyconvnet: the C compiler cannot build and run OpenMP "
            "programs; building WITHOUT OpenMP. Every kernel will run on a "
            "single core. (On macOS, install libomp and use a compiler that "
            "supports -fopenmp.) ***\n",
            stacklevel=1,
        )
    else:
        compile_args += omp[0]
        link_args += omp[1]
    macros = [("NPY_NO_DEPRECATED_API", "NPY_1_9_API_VERSION")]
    names = ["_openmp", "_conv", "_pool", "_optim"]
    exts = [
        Extension(
            f"pyconvnet.{name}",
            [f"pyconvnet/{name}.pyx"],
            include_dirs=[np.get_include()],
            define_macros=macros,
            extra_compile_args=compile_args,
            extra_link_args=link_args,
        )
        for name in names
    ]
    checks = bool(os.environ.get("PYCONVNET_BOUNDSCHECK"))
    directives = {
        "language_level": 3,
        "boundscheck": checks,
        "wraparound": checks,
        "initializedcheck": checks,
        "cdivision": True,
        "embedsignature": True,
    }
    return cythonize(exts, compiler_directives=directives)


setup(ext_modules=extensions())
