"""The paper's grids (Tables 1, 2, 3) as one resumable command each: `python -m runs table2 ...`.

One module per job:
  tables.py     what each table covers (datasets, workers, which arms it compares)
  catalog.py    what exists today (tasks the task layer knows, workers `python -m corl` runs)
  grid.py       grid expansion: one cell (one run folder, one command) per env x arm x seed
  manifest.py   a cell's manifest.json and its state (done, running, interrupted, failed, ...)
  execute.py    run one cell's command: log file, manifest, heartbeat (the same in every engine)
  engines.py    where cells run: local processes (JOBS at once) or submitit (submitit_engine.py)
  scheduler.py  run a grid: skip finished cells, respect dependencies, JOBS at once
  aggregate.py  mean +- std over seeds, Welch's t-test, learning curves, provenance
  report.py     runs/table<N>.md and .csv;  plots.py: runs/table<N>.png
  paper.py      the paper's published numbers (paper_results.csv)
See docs/tables.md. (runs/demo.py, the `make demo` entry, also lives here.)
"""
