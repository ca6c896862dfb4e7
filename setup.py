# Copyright (c) mmprompt contributors. All rights reserved.
"""Install mmprompt: ``pip install -e .`` (add ``.[tests]`` for the tests,
``.[lpclip]`` for the CoOp paper's linear probe)."""
import os
import os.path as osp
import subprocess
import sys
from setuptools import find_packages, setup

HERE = osp.dirname(osp.abspath(__file__))


def readme() -> str:
    with open(osp.join(HERE, 'README.md'), encoding='utf-8') as f:
        return f.read()


def get_version() -> str:
    scope = {}
    with open(osp.join(HERE, 'mmprompt', 'version.py'), encoding='utf-8') as f:
        exec(compile(f.read(), 'version.py', 'exec'), scope)
    return scope['__version__']


def parse_requirements(fname: str) -> list:
    """Read one requirements file, following ``-r`` includes."""
    requirements = []
    with open(osp.join(HERE, fname), encoding='utf-8') as f:
        for line in f:
            line = line.split('#', 1)[0].strip()
            if not line:
                continue
            if line.startswith('-r '):
                include = osp.join(osp.dirname(fname), line[3:].strip())
                requirements += parse_requirements(include)
            else:
                requirements.append(line)
    return requirements


def full_mmcv_installed() -> bool:
    """Whether the target environment already has the full ``mmcv``.

    ``mmcv`` and ``mmcv-lite`` install the same ``mmcv`` package; installing
    the lite one over a full build would leave its compiled ops mismatched.
    pip builds in an isolated environment that hides the target's
    site-packages, so ask the target interpreter without that isolation.
    """
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in ('PYTHONPATH', 'PYTHONNOUSERSITE', 'PYTHONHOME')
    }
    probe = ('import importlib.metadata as m\n'
             'try:\n    m.distribution("mmcv")\n'
             'except m.PackageNotFoundError:\n    raise SystemExit(1)\n')
    try:
        return subprocess.run([sys.executable, '-c', probe],
                              env=env,
                              stdout=subprocess.DEVNULL,
                              stderr=subprocess.DEVNULL).returncode == 0
    except OSError:
        return False


def runtime_requirements() -> list:
    requirements = parse_requirements('requirements/runtime.txt')
    if full_mmcv_installed():
        requirements = [
            req.replace('mmcv-lite', 'mmcv', 1)
            if req.startswith('mmcv-lite') else req for req in requirements
        ]
    return requirements


setup(
    name='mmprompt',
    version=get_version(),
    description='CoOp and CoCoOp prompt learning for CLIP, '
    'an OpenMMLab (mmpretrain) plugin',
    long_description=readme(),
    long_description_content_type='text/markdown',
    keywords='prompt learning, CLIP, CoOp, CoCoOp, OpenMMLab, mmpretrain',
    packages=find_packages(exclude=('configs', 'tools', 'tests', 'docs')),
    include_package_data=True,
    package_data={'mmprompt.models.clip': ['model_configs/*.json']},
    python_requires='>=3.9',
    license='Apache-2.0',
    classifiers=[
        'Programming Language :: Python :: 3',
        'Topic :: Scientific/Engineering :: Artificial Intelligence',
    ],
    install_requires=runtime_requirements(),
    extras_require={
        'tests': parse_requirements('requirements/tests.txt'),
        'docs': parse_requirements('requirements/docs.txt'),
        'lpclip': parse_requirements('requirements/lpclip.txt'),
    },
    zip_safe=False)
