"""Speed benchmarks, each a ratio against a baseline timed in the same run: target rendering
(`targets`), data generation against cache loads (`data`), the trainer against a bare loop
(`trainer`) and several training processes side by side against one (`jobs`). The `bench perf`
group is `bench.cli.perf_command`."""
