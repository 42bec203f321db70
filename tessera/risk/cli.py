"""``tessera risk``: simulate a labelled login log, score a log by replaying it, evaluate scores."""

from __future__ import annotations

import asyncio
import csv
import json
import secrets
import sys
from pathlib import Path

import typer

from tessera.risk.dataset import DatasetError, Row, load
from tessera.risk.evaluate import LabelledLogin, Report, evaluate, plot
from tessera.risk.replay import LEARN_MODES, Scored, replay

app = typer.Typer(help="Threat detection: simulate, score and evaluate login logs.", no_args_is_help=True)

OnErrorOption = typer.Option(
    "fail",
    "--on-error",
    help="fail: stop at the first bad row (exit 2); skip: report each bad row on stderr and go on.",
)
LearnOption = typer.Option(
    "assume-passed",
    "--learn",
    help="What the replay learns from: assume-passed (a step-up counts as passed; no label is read), "
    "allowed-only (only logins allowed outright), labels (the labels stand for the second factor: the user "
    "passes, the attacker fails, which teaches the attacker side, and no attack teaches its victim's "
    "profile).",
)


def _rows(path: Path, on_error: str) -> list[Row]:
    if on_error not in {"fail", "skip"}:
        raise typer.BadParameter("--on-error must be fail or skip")
    skipped: list[DatasetError] = []

    def report(error: DatasetError) -> None:
        skipped.append(error)
        typer.secho(f"skipped {path}: {error}", fg=typer.colors.YELLOW, err=True)

    try:
        rows = load(path, on_error=on_error, errors=report)
    except DatasetError as exc:
        typer.secho(f"error: {path}: {exc}", fg=typer.colors.RED, err=True)
        raise typer.Exit(2) from exc
    except OSError as exc:
        typer.secho(f"error: {exc}", fg=typer.colors.RED, err=True)
        raise typer.Exit(2) from exc
    if skipped:
        typer.secho(f"{len(skipped)} row(s) skipped, {len(rows)} read", fg=typer.colors.YELLOW, err=True)
    return rows


def _replay(rows: list[Row], learn: str) -> list[Scored]:
    from tessera.risk.engine import RiskEngine

    if learn not in LEARN_MODES:
        raise typer.BadParameter(f"--learn must be one of {', '.join(LEARN_MODES)}")
    # A fresh secret per run: the log carries no passwords, so no fingerprint needs to survive the run.
    engine = RiskEngine(secret=secrets.token_bytes(32))
    return asyncio.run(replay(rows, engine, learn=learn))


@app.command("simulate")
def simulate_command(
    users: int = typer.Option(2000, "--users", min=1, max=1_000_000, help="Legitimate users to simulate."),
    seed: int = typer.Option(1, "--seed", help="Random seed (same seed, same log)."),
    out: Path = typer.Option(..., "--out", help="CSV file to write (RBA dataset columns plus Attack Type)."),
    attacks_per_stage: int = typer.Option(
        1,
        "--attacks-per-stage",
        min=0,
        max=100,
        help="Attempts of each attacker type on each victim in each stage of the victim's history "
        "(after 1-3, 4-7, 8-11, 12-19, 20-39, 40-79, 80-119, 120+ logins), so that every history "
        "length is evaluated on about as many attacks as users reach it; 0: one attempt per attacker "
        "type on 85% of the victims, at a random moment.",
    ),
) -> None:
    """Write a labelled login log: legitimate habits, four attacker models and credential-stuffing
    campaigns."""
    from tessera.risk.simulate import write

    rows = write(out, users, seed, attacks_per_stage)
    typer.echo(f"wrote {rows} logins of {users} users to {out}")


@app.command("score")
def score_command(
    file: Path = typer.Argument(..., help="Login log in the RBA dataset's columns."),
    out: Path = typer.Option(..., "--out", help="Where to write index,score (higher is riskier)."),
    learn: str = LearnOption,
    on_error: str = OnErrorOption,
) -> None:
    """Replay the log in time order, learning online as production would; write a score for every row."""
    rows = _rows(file, on_error)
    scored = _replay(rows, learn)
    with out.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle, lineterminator="\n")
        writer.writerow(["index", "score"])
        for item in scored:
            writer.writerow([item.index, f"{item.score:.6f}"])
    typer.echo(f"scored {len(scored)} rows into {out}")


def _read_scores(path: Path, rows: list[Row]) -> list[float]:
    by_index: dict[str, float] = {}
    with path.open(newline="", encoding="utf-8") as handle:
        reader = csv.DictReader(handle)
        if reader.fieldnames is None or not {"index", "score"} <= set(reader.fieldnames):
            typer.secho(f"error: {path}: expected the columns index,score", fg=typer.colors.RED, err=True)
            raise typer.Exit(2)
        for n, record in enumerate(reader, start=2):
            try:
                by_index[record["index"]] = float(record["score"])
            except (TypeError, ValueError):
                typer.secho(f"error: {path}: line {n}: score is not a number", fg=typer.colors.RED, err=True)
                raise typer.Exit(2) from None
    missing = [row.index for row in rows if row.index not in by_index]
    if missing:
        typer.secho(
            f"error: {path}: no score for {len(missing)} row(s), first index {missing[0]}",
            fg=typer.colors.RED,
            err=True,
        )
        raise typer.Exit(2)
    return [by_index[row.index] for row in rows]


def labelled(rows: list[Row]) -> list[LabelledLogin]:
    out = []
    for row in rows:
        kind = row.labels.get("Attack Type")
        if kind is None:
            takeover = row.labels.get("Is Account Takeover", "").strip().lower() in {"true", "1"}
            kind = "attack" if takeover else "legitimate"
        out.append(LabelledLogin(row.event.user_id, row.event.timestamp, row.event.success, kind))
    return out


@app.command("eval")
def eval_command(
    file: Path = typer.Argument(
        ..., help="A labelled login log (Attack Type or Is Account Takeover column)."
    ),
    scores: Path | None = typer.Option(
        None, "--scores", help="Evaluate these index,score rows instead of replaying."
    ),
    plot_path: Path | None = typer.Option(
        None, "--plot", help="PNG to write (default: FILE with .eval.png)."
    ),
    global_threshold: bool = typer.Option(
        False, "--global-threshold", help="One threshold over all attacks instead of one per history bucket."
    ),
    learn: str = LearnOption,
    on_error: str = OnErrorOption,
    as_json: bool = typer.Option(False, "--json", help="Print the report as JSON."),
) -> None:
    """Wiefling et al.'s measure: per attacker type, the thresholds blocking 97/99/99.5/99.9% of its attacks
    and
    the median re-authentication rate of legitimate users at each, by login history length."""
    rows = _rows(file, on_error)
    if not rows:
        typer.secho("error: the log has no rows", fg=typer.colors.RED, err=True)
        raise typer.Exit(2)
    replayed = None if scores else _replay(rows, learn)
    values = _read_scores(scores, rows) if scores else [s.score for s in replayed or []]
    logins = labelled(rows)
    report: Report = evaluate(logins, values, per_history=not global_threshold)
    decisions = _decisions(logins, replayed) if replayed is not None else None
    if not report.cells:
        typer.secho(
            "error: no attacks labelled naive, vpn, targeted or very_targeted in the log",
            fg=typer.colors.RED,
            err=True,
        )
        raise typer.Exit(2)
    target = plot_path or file.with_suffix(".eval.png")
    plotted = True
    try:
        plot(report, target)
    except RuntimeError as exc:
        plotted = False
        typer.secho(f"no plot: {exc}", fg=typer.colors.YELLOW, err=True)
        if plot_path is not None:
            raise typer.Exit(1) from exc
    if as_json:
        data = report.to_json()
        data["plot"] = str(target) if plotted else None
        data["decisions"] = decisions
        typer.echo(json.dumps(data, indent=2))
        return
    typer.echo(report.table())
    if decisions:
        typer.echo("")
        typer.echo("decisions at the default policy (share of each kind of login):")
        typer.echo("| logins | count | allow | step_up | deny |")
        typer.echo("| --- | --- | --- | --- | --- |")
        for kind, row in decisions.items():
            shares = " | ".join(f"{row[d]:.1%}" for d in ("allow", "step_up", "deny"))
            typer.echo(f"| {kind} | {row['count']:.0f} | {shares} |")
    if plotted:
        typer.echo(f"plot: {target}")


def _decisions(logins: list[LabelledLogin], scored: list[Scored]) -> dict[str, dict[str, float]]:
    """How the policy's thresholds treat each kind of login (successful logins; every stuffing attempt)."""
    counts: dict[str, dict[str, float]] = {}
    for login, item in zip(logins, scored, strict=True):
        kind = login.attack or "legitimate"
        if not login.success and kind != "stuffing":
            continue
        row = counts.setdefault(kind, {"count": 0.0, "allow": 0.0, "step_up": 0.0, "deny": 0.0})
        row["count"] += 1
        row[item.decision.value] = row.get(item.decision.value, 0.0) + 1
    return {
        kind: {"count": row["count"], **{d: row[d] / row["count"] for d in ("allow", "step_up", "deny")}}
        for kind, row in sorted(counts.items())
    }


def main() -> None:  # pragma: no cover - for python -m
    app()


if __name__ == "__main__":  # pragma: no cover
    sys.exit(app())
