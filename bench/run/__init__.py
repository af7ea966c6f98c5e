"""Running a grid: grid files to cells (`grid`, `cell`, `schedule`), the cells over processes
(`runner`), and the one training loop every cell runs (`trainer`, with `checkpoint`, `augment`
and the terminal `progress` lines)."""
