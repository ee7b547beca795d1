"""The cluster configs of `examples/cluster/` pass what Ray checks before `ray up` touches a machine.

`ray up` needs SSH to every node (and cloud credentials for AWS), so it cannot
run here. What Ray does first, without either, is done here: fill in its
defaults for the provider (`prepare_config`) and validate the result against
its own JSON schema (`validate_config`), as `ray up` does before it connects.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

pytestmark = pytest.mark.cluster

yaml = pytest.importorskip("yaml")
pytest.importorskip("ray")

from ray.autoscaler._private.util import prepare_config, validate_config  # noqa: E402 - needs ray

CONFIGS = sorted((Path(__file__).parent.parent / "examples" / "cluster").glob("*.yaml"))


def load(path: Path) -> dict[str, Any]:
    config = yaml.safe_load(path.read_text())
    assert isinstance(config, dict)
    return config


@pytest.mark.parametrize("path", CONFIGS, ids=lambda path: path.name)
class TestClusterConfig:
    def test_ray_accepts_it(self, path: Path) -> None:
        """Ray's defaults fill in and its schema validates the result."""
        validate_config(prepare_config(load(path)))

    def test_it_installs_actorsim_and_pins_ray(self, path: Path) -> None:
        """Every node gets actorsim from the copied source and the same Ray as the driver."""
        config = load(path)
        setup = " ".join(config["setup_commands"])
        assert '-e "$HOME/actorsim[ray]"' in setup
        assert "ray[default]==" in setup
        assert config["file_mounts"]["~/actorsim"] == "."

    def test_token_auth_is_on_everywhere(self, path: Path) -> None:
        """Each node starts with token auth and has the cluster's token."""
        config = load(path)
        for key in ("head_start_ray_commands", "worker_start_ray_commands"):
            start = [command for command in config[key] if "ray start" in command]
            assert start and all("RAY_AUTH_MODE=token" in command for command in start), key
        assert "~/.ray/auth_token" in config["file_mounts"]


def test_both_variants_are_there() -> None:
    """An on-premises config and a cloud one."""
    providers = {load(path)["provider"]["type"] for path in CONFIGS}
    assert providers == {"local", "aws"}


def test_the_check_catches_a_misspelt_key() -> None:
    """The validation is not vacuous: a key Ray does not know fails it."""
    config = load(CONFIGS[0])
    config["setup_comands"] = config.pop("setup_commands")
    with pytest.raises(Exception, match="setup_comands"):
        validate_config(prepare_config(config))
