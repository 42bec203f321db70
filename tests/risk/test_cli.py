"""``tessera risk simulate | score | eval`` on a small log, as a user runs them."""

from __future__ import annotations

import csv
import json
from pathlib import Path

from typer.testing import CliRunner

from tessera.cli.main import app

runner = CliRunner()


def test_simulate_score_eval(tmp_path: Path) -> None:
    log = tmp_path / "log.csv"
    result = runner.invoke(app, ["risk", "simulate", "--users", "60", "--seed", "5", "--out", str(log)])
    assert result.exit_code == 0, result.output
    with log.open() as handle:
        rows = list(csv.DictReader(handle))
    assert {"Login Timestamp", "User ID", "Round-Trip Time [ms]", "ASN", "Attack Type"} <= set(rows[0])
    kinds = {row["Attack Type"] for row in rows}
    assert {"legitimate", "naive", "vpn", "targeted", "very_targeted", "stuffing"} <= kinds
    assert any(
        row["Login Successful"] == "False" and row["Attack Type"] == "legitimate" for row in rows
    )  # typos
    # Same seed, same log.
    again = tmp_path / "again.csv"
    runner.invoke(app, ["risk", "simulate", "--users", "60", "--seed", "5", "--out", str(again)])
    assert again.read_bytes() == log.read_bytes()

    scores = tmp_path / "scores.csv"
    result = runner.invoke(app, ["risk", "score", str(log), "--out", str(scores)])
    assert result.exit_code == 0, result.output
    with scores.open() as handle:
        scored = list(csv.reader(handle))
    assert scored[0] == ["index", "score"]
    assert [r[0] for r in scored[1:]] == [row["index"] for row in rows]
    assert all(float(r[1]) == float(r[1]) for r in scored[1:])

    plot = tmp_path / "plot.png"
    result = runner.invoke(
        app, ["risk", "eval", str(log), "--scores", str(scores), "--plot", str(plot), "--json"]
    )
    assert result.exit_code == 0, result.output
    report = json.loads(result.output)
    attacks = {cell["attack"] for cell in report["cells"]}
    assert attacks == {"naive", "vpn", "targeted", "very_targeted"}
    assert {cell["blocked"] for cell in report["cells"]} == {0.97, 0.99, 0.995, 0.999}
    assert plot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"

    table = runner.invoke(app, ["risk", "eval", str(log), "--plot", str(tmp_path / "p2.png")])
    assert table.exit_code == 0, table.output
    assert "| targeted | 99.0% |" in table.output


def test_bad_files_exit_2_with_the_line(tmp_path: Path) -> None:
    bad = tmp_path / "bad.csv"
    bad.write_text(
        "Login Timestamp,User ID,IP Address\n2024-01-01 10:00:00,alice,1.2.3.4\n2024-01-01,bob,999.1.1.1\n"
    )
    result = runner.invoke(app, ["risk", "score", str(bad), "--out", str(tmp_path / "s.csv")])
    assert result.exit_code == 2
    assert "line 3: not an IP address" in result.output
    skipped = runner.invoke(
        app, ["risk", "score", str(bad), "--out", str(tmp_path / "s.csv"), "--on-error", "skip"]
    )
    assert skipped.exit_code == 0
    assert "skipped" in skipped.output and "1 row(s) skipped, 1 read" in skipped.output
    missing = tmp_path / "missing.csv"
    missing.write_text("User ID,IP Address\nalice,1.2.3.4\n")
    result = runner.invoke(app, ["risk", "eval", str(missing)])
    assert result.exit_code == 2 and "missing required column(s): Login Timestamp" in result.output
    nothing = runner.invoke(
        app, ["risk", "score", str(tmp_path / "absent.csv"), "--out", str(tmp_path / "s.csv")]
    )
    assert nothing.exit_code == 2
