"""What each of the paper's tables covers: datasets, workers and the two arms each entry compares.

An entry of a table is "baseline -> ours" for one dataset and one column:
  Table 1  flat agents: TD-MPC -> IQL-TD-MPC (the paper's IQL / TT / TAP columns are published-only)
  Table 2  each CORL worker without intents -> with the Manager's intents
  Table 3  each CORL worker without intents -> with random intents (the ablation)
An arm is the run-folder path under runs/<env>/ (("td_mpc",) or ("bc", "none")).
"""
from __future__ import annotations

from dataclasses import dataclass

ANTMAZE = ("antmaze-umaze-v2", "antmaze-umaze-diverse-v2", "antmaze-medium-play-v2", "antmaze-medium-diverse-v2",
           "antmaze-large-play-v2", "antmaze-large-diverse-v2", "antmaze-ultra-play-v0", "antmaze-ultra-diverse-v0")
MAZE2D = ("maze2d-umaze-v1", "maze2d-medium-v1", "maze2d-large-v1")
HALFCHEETAH = ("halfcheetah-medium-v2", "halfcheetah-medium-replay-v2", "halfcheetah-medium-expert-v2")
PAPER_DATASETS = ANTMAZE + MAZE2D + HALFCHEETAH

PAPER_WORKERS = ("awac", "bc", "dt", "iql", "td3_bc", "cql")  # Table 2's columns, in its order
ABLATION_WORKERS = ("awac", "bc", "iql", "td3_bc")            # Table 3's columns
WORKER_LABELS = {"awac": "AWAC", "bc": "BC", "bc_10": "10% BC", "dt": "DT", "iql": "IQL", "td3_bc": "TD3-BC",
                 "cql": "CQL", "idql": "IDQL"}
FLAT_LABELS = {"td_mpc": "TD-MPC", "iql_td_mpc": "IQL-TD-MPC"}


@dataclass(frozen=True)
class Column:
    """One column of a table: its label and the two arms each of its entries compares."""
    label: str
    baseline: tuple[str, ...]
    ours: tuple[str, ...]


@dataclass(frozen=True)
class TableSpec:
    name: str                         # "table2"
    number: int
    title: str
    datasets: tuple[str, ...]         # the paper's rows, in its order
    default_algos: tuple[str, ...]    # the paper's worker columns (empty for Table 1)
    ours_intent: str | None           # "manager" | "random" for worker tables, None for Table 1
    baseline_label: str
    ours_label: str
    published_only: tuple[str, ...] = ()  # paper columns without a run of ours (Table 1: IQL, TT, TAP)

    @property
    def needs_manager(self) -> bool:
        return self.ours_intent == "manager"

    @property
    def takes_algos(self) -> bool:
        return self.ours_intent is not None

    def columns(self, algos: tuple[str, ...]) -> list[Column]:
        if not self.takes_algos:
            return [Column(f"{FLAT_LABELS['td_mpc']} → {FLAT_LABELS['iql_td_mpc']}", ("td_mpc",), ("iql_td_mpc",))]
        return [Column(WORKER_LABELS.get(a, a), (a, "none"), (a, self.ours_intent)) for a in algos]


TABLES: dict[str, TableSpec] = {
    "table1": TableSpec("table1", 1, "Table 1: flat agents, TD-MPC → IQL-TD-MPC", PAPER_DATASETS, (),
                        None, "TD-MPC", "IQL-TD-MPC", published_only=("IQL", "TT", "TAP")),
    "table2": TableSpec("table2", 2, "Table 2: CORL workers, baseline → with the Manager's intents", PAPER_DATASETS,
                        PAPER_WORKERS, "manager", "baseline (no intents)", "Manager intents"),
    "table3": TableSpec("table3", 3, "Table 3: ablation, baseline → with random intents",
                        ANTMAZE[2:6] + HALFCHEETAH, ABLATION_WORKERS, "random", "baseline (no intents)",
                        "random intents"),
}


def get_table(name: str) -> TableSpec:
    """The spec of table1 / table2 / table3 (also accepts 1, 2, 3)."""
    key = f"table{name}" if str(name).isdigit() else str(name)
    if key not in TABLES:
        raise ValueError(f"unknown table {name!r}; choose one of: {', '.join(TABLES)}")
    return TABLES[key]
