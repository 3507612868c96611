"""The lab's version and its pin on the library, both read from the library's one version.

The lab is built from the same checkout as the library (``lab/`` beside ``orbitlab/``), so
``orbitlab/__init__.py`` is the single place the version is written.
"""

import re
from pathlib import Path

from setuptools import setup

LIBRARY_INIT = Path(__file__).resolve().parent.parent / "orbitlab" / "__init__.py"
VERSION = re.search(r'^__version__ = "([^"]+)"$', LIBRARY_INIT.read_text(), re.M).group(1)

setup(
    version=VERSION,
    install_requires=[
        f"orbitlab-networks=={VERSION}",
        "pulumi>=3.200,<4",
        "netaddr>=1.3,<2",
        "pyyaml>=6,<7",
    ],
)
