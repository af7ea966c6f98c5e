"""Beyond one process: the Optuna-backed work queue of cells (`queue`) served by `bench worker`
processes (`worker`) with their timing defaults (`timing`), and tuning Adaloss's parameters
(`tune`, with its search space in `tune_space`)."""
