"""Shared test settings: JAX on the CPU, and MuJoCo rendering with EGL (the visual tests render frames; on a machine
without a GPU EGL renders in software). Both are defaults that the environment may override."""

import os

os.environ.setdefault('MUJOCO_GL', 'egl')
os.environ.setdefault('JAX_PLATFORMS', 'cpu')
