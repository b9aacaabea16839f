"""python -m corl ALGO [--env ...] [--intent none|manager|random] ...: run one worker.
python -m corl evaluate RUN_DIR [--episodes N] [--seed S]: score a trained worker again.

ALGO is one of the keys of WORKERS (bc and bc_10 share any_percent_bc.py). Every other flag goes
to the worker file's own pyrallis CLI: `python -m corl bc --help`; `python -m corl evaluate --help`.
"""
import importlib
import sys

WORKERS = {"bc": "corl.any_percent_bc", "bc_10": "corl.any_percent_bc", "awac": "corl.awac", "iql": "corl.iql",
           "td3_bc": "corl.td3_bc", "cql": "corl.cql", "dt": "corl.dt", "idql": "corl.idql"}


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in ("-h", "--help"):
        print(__doc__ + f"\nworkers: {', '.join(WORKERS)}")
        return 0
    algo, rest = argv[0], argv[1:]
    if algo == "evaluate":
        from corl.shared.evaluate import main as evaluate_main

        return evaluate_main(rest)
    if algo not in WORKERS:
        print(f"error: unknown worker {algo!r}; choose one of: {', '.join(WORKERS)}", file=sys.stderr)
        return 2
    module = importlib.import_module(WORKERS[algo])
    return module.main(["--algo", algo, *rest])  # worker_main turns bad input into one `error:` line


if __name__ == "__main__":
    sys.exit(main())
