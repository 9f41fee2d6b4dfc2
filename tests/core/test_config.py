"""Boundary configuration: YAML validated once, clear errors naming file and field."""

from __future__ import annotations

from pathlib import Path

import pytest

from slumwatch.config import ConfigError, DemoConfig, load_yaml_config, parse_years


def test_parse_years() -> None:
    assert parse_years("2014-2024").years == tuple(range(2014, 2025))
    assert parse_years("2019").years == (2019,)
    for bad in ("2024-2014", "abc", "2014-2015-2016"):
        with pytest.raises(ConfigError):
            parse_years(bad)


def test_shipped_demo_config_is_valid(repo_root: Path) -> None:
    cfg = load_yaml_config(repo_root / "deploy" / "configs" / "demo.yaml", DemoConfig)
    assert cfg.size == "tiny" and cfg.out.is_absolute()
    assert set(cfg.train_years) <= set(cfg.years.years)


def test_invalid_yaml_names_file_and_field(tmp_path: Path) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text("out: x\nepochs: 0\ntile_overlap: 999\n")
    with pytest.raises(ConfigError) as err:
        load_yaml_config(path, DemoConfig)
    assert "bad.yaml" in str(err.value) and "epochs" in str(err.value)


def test_unknown_field_and_non_mapping_are_rejected(tmp_path: Path) -> None:
    path = tmp_path / "c.yaml"
    path.write_text("out: x\nlearning_rat: 0.1\n")
    with pytest.raises(ConfigError, match="learning_rat"):
        load_yaml_config(path, DemoConfig)
    path.write_text("- 1\n- 2\n")
    with pytest.raises(ConfigError, match="mapping"):
        load_yaml_config(path, DemoConfig)
    with pytest.raises(ConfigError, match="not found"):
        load_yaml_config(tmp_path / "missing.yaml", DemoConfig)


def test_train_years_must_be_inside_years(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="outside years"):
        DemoConfig(out=tmp_path, years=parse_years("2014-2016"), train_years=(2020,))
