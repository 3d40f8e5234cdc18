"""Measuring pllm against public benchmarks (data conversion and metrics; no models, no heavy imports)."""
