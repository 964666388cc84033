"""The stack options are declared once (infra/config.py); the README and docs/deploy.md follow."""

from __future__ import annotations

import re
from dataclasses import fields
from pathlib import Path

import pytest

from infra.config import OPTIONS, ConfigError, StackConfig, config_from_context, options_table

ROOT = Path(__file__).resolve().parent.parent


def test_the_readme_carries_the_declared_table() -> None:
    assert options_table("docs/deploy.md") in (ROOT / "README.md").read_text()


def test_deploy_md_carries_the_table_and_one_section_per_option_in_order() -> None:
    text = (ROOT / "docs" / "deploy.md").read_text()
    assert options_table() in text
    options = text.split("## Context options", 1)[1].split("\n## ", 1)[0]
    sections = re.findall(r"^### `([a-z_]+)`\n\n(.*)", options, re.M)
    assert tuple(name for name, _ in sections) == OPTIONS
    for (name, first_line), field in zip(sections, fields(StackConfig), strict=True):
        default = "none" if field.default is None else str(field.default)
        assert default in first_line, (name, first_line)


def test_every_option_is_parsed_from_its_text_and_documented() -> None:
    for field in fields(StackConfig):
        assert len(field.metadata["doc"]) > 20 and field.metadata["parse"].__doc__
    config = config_from_context({"min_workers": "0", "max_workers": "10", "warm_pool_size": "2",
                                  "visibility_timeout": 30, "ssh_cidr": "",
                                  "not_an_option": "x"})
    assert (config.min_workers, config.max_workers, config.warm_pool) == (0, 10, 2)
    assert config.visibility_timeout == 30 and config.ssh_cidr is None


@pytest.mark.parametrize(("context", "pool"), [
    ({}, 0), ({"max_workers": "2"}, 1), ({"min_workers": "0"}, 1),
    ({"min_workers": "2", "max_workers": "2"}, 0)])
def test_the_pool_exists_only_where_the_group_can_grow(context: dict, pool: int) -> None:
    assert config_from_context(context).warm_pool == pool


@pytest.mark.parametrize("value", ["-1", "21", "two"])
def test_a_bad_min_workers_is_refused(value: str) -> None:
    with pytest.raises(ConfigError, match="min_workers"):
        config_from_context({"min_workers": value, "max_workers": "20"})
