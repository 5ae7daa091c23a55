"""The README stays true to the template and the Makefile."""

from videodb_retry_local.stack.template import PROJECT_ROOT, load_document

README = (PROJECT_ROOT / "README.md").read_text()


def test_every_parameter_is_documented_with_its_default():
    for name, spec in load_document()["Parameters"].items():
        default = spec.get("Default", "")
        shown = f"`{default}`" if default != "" else "*(empty)*"
        assert f"| `{name}` | {shown} |" in README, f"README lacks {name} with default {shown}"


def test_every_output_is_documented():
    for name in load_document()["Outputs"]:
        assert f"`{name}`" in README


def test_the_two_commands_are_shown():
    assert "make demo" in README and "make test" in README
    assert "make test" in (PROJECT_ROOT / ".ci" / "run").read_text()
