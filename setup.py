"""Packaging hook: ships ``rlm_router_compat.pth`` next to the package (see rlm_router/_compat.py).

Everything else is in pyproject.toml; setuptools has no declarative way to place a ``.pth``
file at the top of site-packages. This hook does it for wheels; editable installs (PEP 660)
do not run it, so a checkout's editable install has no 0.1 alias.
"""

from __future__ import annotations

import os

from setuptools import setup
from setuptools.command.build_py import build_py

PTH = "rlm_router_compat.pth"


class BuildWithPth(build_py):
    def run(self) -> None:
        super().run()
        self.copy_file(os.path.join("rlm_router", PTH), os.path.join(self.build_lib, PTH))

    def get_outputs(self, include_bytecode: bool = True) -> list[str]:
        return [*super().get_outputs(include_bytecode), os.path.join(self.build_lib, PTH)]


setup(cmdclass={"build_py": BuildWithPth})
