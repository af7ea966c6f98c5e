"""Synthetic generators, one module per task, that model what makes each paper task hard.

Each module exposes `GENERATOR_VERSION`, `PROFILES` ("smoke", "quick", "paper") and
`generate(params, seed) -> LandmarkDataset`; see `bench.data.sources` for the contract.
`imaging` holds the image-formation primitives they share.
"""
