"""Shared test settings: CPU, float32 by default, quiet MuJoCo."""

import os

os.environ.setdefault('MUJOCO_GL', 'egl')
os.environ.setdefault('JAX_PLATFORMS', 'cpu')
