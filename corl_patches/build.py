"""Rebuild corl_patches/*.patch from an upstream CORL checkout (or check they still apply).

    python corl_patches/build.py /path/to/CORL            # rewrite the .patch files
    python corl_patches/build.py /path/to/CORL --check    # only check that they apply (git apply --check)

Each CORL script gets one import and the plugin's two marked lines (`# PLUGIN(intents)`):
  - the eval env is wrapped right where it is made, before its observation size is read;
  - the dataset is augmented right after it is loaded, before any normalisation.
The edits are found by the patterns below (CORL @ eeeeef2); the script fails loudly when a
pattern no longer matches exactly once, rather than writing a wrong patch.
"""
from __future__ import annotations

import argparse
import re
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
MARK = "# PLUGIN(intents)"
IMPORT = "from wrappers.corl_hook import plugin_augment, plugin_wrap_env  # iql-td-mpc plugin (corl_patches/)\n"

# file -> [(pattern, replacement)]; the replacement may use the pattern's named groups.
TRANSITION_EDITS = [
    (r"(?P<i>[ ]+)env = gym\.make\(config\.(?P<name>env(?:_name)?)\)\n",
     "{i}env = plugin_wrap_env(gym.make(config.{name}), config.{name})  " + MARK + "\n"),
    (r"(?P<i>[ ]+)dataset = d4rl\.qlearning_dataset\(env\)\n",
     "{i}dataset = d4rl.qlearning_dataset(env)\n{i}dataset = plugin_augment(dataset, config.{name})  " + MARK + "\n"),
]
EDITS = {
    **{f"algorithms/offline/{algo}.py": TRANSITION_EDITS for algo in ("any_percent_bc", "awac", "iql", "td3_bc", "cql")},
    "algorithms/offline/dt.py": [
        (r"(?P<i>[ ]+)dataset = gym\.make\(env_name\)\.get_dataset\(\)\n",
         "{i}dataset = gym.make(env_name).get_dataset()\n{i}dataset = plugin_augment(dataset, env_name)  " + MARK + "\n"),
        (r"(?P<i>[ ]+)env=gym\.make\(config\.env_name\),\n",
         "{i}env=plugin_wrap_env(gym.make(config.env_name), config.env_name),  " + MARK + "\n"),
    ],
}


def patched_text(text: str, edits: list[tuple[str, str]], path: str) -> str:
    name = None
    for pattern, replacement in edits:
        matches = list(re.finditer(pattern, text))
        if len(matches) != 1:
            raise SystemExit(f"{path}: expected one match of {pattern!r}, found {len(matches)}; "
                             "CORL changed: update the patterns in corl_patches/build.py")
        groups = matches[0].groupdict()
        name = groups.get("name") or name
        new = replacement.format(**{**groups, "name": name})
        text = text[:matches[0].start()] + new + text[matches[0].end():]
    anchor = re.search(r"^import wandb\n", text, flags=re.M)
    if anchor is None:
        raise SystemExit(f"{path}: no `import wandb` line to put the plugin import after")
    return text[:anchor.end()] + IMPORT + text[anchor.end():]


def patch_name(path: str) -> str:
    return Path(path).stem + ".patch"


def git(corl: Path, *args: str, **kwargs) -> subprocess.CompletedProcess:
    """`git -C corl ARGS`; a failure stops the script with git's own message, not a traceback."""
    proc = subprocess.run(["git", "-C", str(corl), *args], text=True, capture_output=True, **kwargs)
    if proc.returncode:
        raise SystemExit(f"error: git {' '.join(args)} failed in {corl}: {proc.stderr.strip()}")
    return proc


def check_checkout(corl: Path) -> None:
    """`corl` is a git checkout holding the CORL files the patches edit, or the script stops naming the fix."""
    missing = [path for path in EDITS if not (corl / path).is_file()]
    if missing:
        more = f" and {len(missing) - 1} more of CORL's scripts" if len(missing) > 1 else ""
        raise SystemExit(f"error: {corl} lacks {missing[0]}{more}: give the root of a git checkout of "
                         "corl-team/CORL (git clone https://github.com/corl-team/CORL; eeeeef2 or compatible)")
    git(corl, "rev-parse", "--git-dir")  # a copy without .git: git's "not a git repository"


def build(corl: Path) -> None:
    if git(corl, "status", "--porcelain", "--", "algorithms").stdout.strip():
        raise SystemExit(f"{corl} has local changes under algorithms/: use a clean checkout")
    try:
        for path, edits in EDITS.items():
            file = corl / path
            file.write_text(patched_text(file.read_text(), edits, path))
            diff = git(corl, "diff", "--", path).stdout
            (HERE / patch_name(path)).write_text(diff)
            print(f"wrote {patch_name(path)}")
    finally:
        git(corl, "checkout", "--", "algorithms")


def check(corl: Path) -> None:
    for path in EDITS:
        git(corl, "apply", "--check", str(HERE / patch_name(path)))
        print(f"{patch_name(path)} applies")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("corl", type=Path, help="a git checkout of corl-team/CORL (eeeeef2 or compatible)")
    parser.add_argument("--check", action="store_true", help="only check that the committed patches apply")
    args = parser.parse_args(argv)
    check_checkout(args.corl)
    (check if args.check else build)(args.corl)
    return 0


if __name__ == "__main__":
    sys.exit(main())
