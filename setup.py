"""Python package definition for catkin (catkin_python_setup); the package is plain Python otherwise."""

from catkin_pkg.python_setup import generate_distutils_setup
from setuptools import find_packages, setup

setup(
    **generate_distutils_setup(
        packages=find_packages(include=["intradp_ros", "intradp_ros.*"]),
        package_dir={"": "."},
    )
)
