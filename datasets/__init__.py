"""OGBench datasets: loading and validation, local generation, device-resident sampling.

This package shadows the Hugging Face `datasets` package when code runs from the project root;
mfql does not use that package.
"""
