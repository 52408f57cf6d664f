"""What pyproject.toml cannot say: the checkout's top-level folders install under one name.

`proxy/` and `backends/` become `warmgate.proxy` and `warmgate.backends` (the folders stay
where a reader looks for them; the wheel's only top-level import name is `warmgate`), and the
SkyPilot task files in `sky/` ship as data at `warmgate/sky/`, where `warmgate fleet` finds
them. `sky/` is never a Python package: it would shadow SkyPilot's own `sky`.
"""

from setuptools import find_namespace_packages, find_packages, setup

CODE_FOLDERS = ("proxy", "backends")

setup(
    packages=[
        f"warmgate.{package}"
        for package in find_packages(include=[f"{folder}*" for folder in CODE_FOLDERS])
    ]
    # Data only: folders of YAML, named as packages so that setuptools ships their files.
    + [f"warmgate.{folder}" for folder in find_namespace_packages(include=["sky", "sky.*"])]
    # Data only too: the console's pages, scripts and styles, and the vendored docs viewer.
    + ["warmgate.proxy.console.static", "warmgate.proxy.console.static.vendor"],
    package_dir={f"warmgate.{folder}": folder for folder in (*CODE_FOLDERS, "sky")},
    package_data={
        "warmgate.proxy": ["py.typed"],
        "warmgate.proxy.console.static": ["*.html", "*.js", "*.css"],
        "warmgate.proxy.console.static.vendor": ["swagger-ui/*"],
        "warmgate.backends": ["py.typed"],
        "warmgate.sky": ["README.md"],
        "warmgate.sky.models": ["*.yaml"],
        "warmgate.sky.proxy": ["*.yaml"],
    },
)
