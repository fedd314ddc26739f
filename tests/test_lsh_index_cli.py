"""`datamill dedup-index build/inspect`, and a built index used by the stage."""

import json
from pydoc_data.topics import topics

import typer
from typer.testing import CliRunner

from pipelines.cli.dedup_index import register
from pipelines.stages.testing import run_stage


def _app():
    app = typer.Typer()
    register(app)

    @app.command("noop")
    def noop() -> None:  # a second command keeps typer from collapsing the group
        pass

    return app


def test_build_inspect_and_use(tmp_path):
    docs = [topics[k] for k in sorted(topics) if len(topics[k].split()) > 80][:30]
    src = tmp_path / "old.jsonl"
    src.write_text(
        "\n".join([json.dumps({"text": d}) for d in docs] + ["not json", '{"x": 1}']) + "\n"
    )
    out = tmp_path / "idx.npz"
    runner = CliRunner()
    res = runner.invoke(
        _app(), ["dedup-index", "build", str(src), str(out), "--expected-docs", "1000"]
    )
    assert res.exit_code == 0, res.output
    info = json.loads(res.output)
    assert info["docs_in_index"] == 30 and info["skipped_lines"] == 2
    res = runner.invoke(_app(), ["dedup-index", "inspect", str(out)])
    assert res.exit_code == 0 and json.loads(res.output)["bands"] == 14  # stage defaults
    bad = tmp_path / "bad.npz"
    bad.write_bytes(b"nope")
    res = runner.invoke(_app(), ["dedup-index", "inspect", str(bad)])
    assert res.exit_code == 2 and "cannot read" in res.output
    new = [
        {"id": "old", "text": docs[3] + " (mirror)", "source": "s"},
        {
            "id": "new",
            "text": "A brand new document about something else entirely, " * 5,
            "source": "s",
        },
    ]
    out2 = run_stage({"stage": "minhash_dedup", "mode": "lshbloom", "index_in": str(out)}, new)
    assert [r["id"] for r in out2["kept"]] == ["new"]
    assert [r["id"] for _, r in out2["removed"]] == ["old"]
