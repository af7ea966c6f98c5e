"""Speed benchmarks, each a ratio against a baseline timed in the same run: target rendering
(`targets`), data generation against cache loads (`data`) and the trainer against a bare loop
(`trainer`). The `bench perf` group is `bench.cli.perf_command`."""
