"""Package discovery, which pyproject.toml cannot express together with package-dir: every
package under regstat/ is found (a new sub-package ships without being listed), and
regstat.sql, which pyproject.toml maps to sql/ at the top of the repository."""

from setuptools import find_packages, setup

setup(packages=[*find_packages(include=["regstat", "regstat.*"]), "regstat.sql"])
