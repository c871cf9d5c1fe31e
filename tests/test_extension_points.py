"""The README's tables of extension points are the registries' entries, generated, not typed."""
import pathlib
import subprocess
import sys

from tfrec.extension_points import EXTENSION_POINTS, markdown_tables, with_tables

README = pathlib.Path(__file__).resolve().parents[1] / "README.md"


def test_the_readme_tables_are_the_generated_ones():
    text = README.read_text()
    assert with_tables(text) == text, (
        "README.md's extension tables are out of date: run `tfrec extensions --write-readme`")


def test_every_registry_entry_has_a_row_and_a_summary():
    tables = markdown_tables()
    for point in EXTENSION_POINTS:
        assert f"`{point.config_key}`" in tables
        for name in point.registry.names():
            row = next(line for line in tables.splitlines() if line.startswith(f"| `{name}` |"))
            assert "has no docstring" not in row and len(row) > len(name) + 12, row


def test_the_tables_need_no_tensorflow():
    code = ("import sys; from tfrec.extension_points import markdown_tables; markdown_tables(); "
            "print('tensorflow' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "False"
