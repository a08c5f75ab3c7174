"""jssl: self-supervised learning in JAX/Flax."""

import os

import setuptools

HERE = os.path.dirname(os.path.abspath(__file__))


def requirements():
  with open(os.path.join(HERE, 'requirements.txt')) as f:
    return [line.split('#')[0].strip() for line in f if line.split('#')[0].strip()]


setuptools.setup(
    name='jssl',
    version='0.1.0',
    description='Self-supervised learning in JAX/Flax: contrastive, generative and adversarial '
                'methods on one sharded train loop.',
    packages=setuptools.find_packages(include=['jssl', 'jssl.*']),
    python_requires='>=3.11',
    install_requires=requirements(),
    entry_points={'console_scripts': ['jssl-train=jssl.main:run']},
)
