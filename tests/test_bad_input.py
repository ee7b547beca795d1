"""Bad input gets a clear error naming what is wrong, and changes nothing."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from actorsim import RolePlay, TaskCenter
from tests.conftest import Make
from tests.helpers import TASK, scripted
from tests.test_task_center import debate


class TestUnknownRoles:
    def test_send_to_an_unknown_role(self, make: Make) -> None:
        """The error names the unknown role and the known ones; nothing is stored."""
        task_center, _ = debate(make, "joe_biden", "donald_trump")
        with pytest.raises(ValueError, match=r"send_to: unknown role 'nobody'; known roles: joe_biden, donald_trump"):
            task_center.send_task_request(TASK, send_to=["joe_biden", "nobody"])
        assert task_center.environment.history() == []
        assert task_center.environment.pending_roles() == []

    def test_send_from_an_unknown_role(self, make: Make) -> None:
        """send_from must be a registered role or the user."""
        task_center, _ = debate(make, "joe_biden")
        with pytest.raises(ValueError, match=r"send_from: unknown role 'mallory'"):
            task_center.send_task_request(TASK, send_from="mallory")
        assert task_center.environment.history() == []

    def test_allowed_roles_with_an_unknown_role(self, make: Make) -> None:
        """step() refuses before any agent runs, leaving the queues as they were."""
        task_center, _ = debate(make, "joe_biden", "donald_trump")
        task_center.send_task_request(TASK)
        with pytest.raises(ValueError, match=r"allowed_roles: unknown role 'ghost'"):
            task_center.step(allowed_roles=["joe_biden", "ghost"])
        assert task_center.environment.pending_roles() == ["joe_biden", "donald_trump"]
        assert len(task_center.environment.history()) == 1

    def test_step_send_to_an_unknown_role(self, make: Make) -> None:
        """A step's send_to is checked before the step."""
        task_center, _ = debate(make, "joe_biden", "donald_trump")
        task_center.send_task_request(TASK)
        with pytest.raises(ValueError, match=r"send_to: unknown role 'ghost'"):
            task_center.step(send_to="ghost")
        assert task_center.environment.pending_roles() == ["joe_biden", "donald_trump"]


class TestDuplicates:
    def test_a_role_is_added_once(self, make: Make) -> None:
        """add_agents refuses a role already taken, and registers none of the batch."""
        task_center, _ = debate(make, "joe_biden")
        newcomer = make(RolePlay, "donald_trump", llm=scripted("hi"))
        twin = make(RolePlay, "joe_twin", role="joe_biden", llm=scripted("hi"))
        with pytest.raises(ValueError, match="role 'joe_biden' is already taken"):
            task_center.add_agents([newcomer, twin])
        assert task_center.roles == ["joe_biden"]
        assert [info.role for info in task_center.registry.agents()] == ["joe_biden"]
        task_center.add_agents([newcomer])
        assert task_center.roles == ["joe_biden", "donald_trump"]

    def test_a_component_name_is_used_once(self, runtime: object) -> None:
        """Two actors of one run cannot share a name."""
        from actorsim import create_component

        create_component(RolePlay, name="solo", remote=True, runtime=runtime, llm=scripted("hi"))
        with pytest.raises(ValueError, match="'solo' already exists"):
            create_component(RolePlay, name="solo", remote=True, runtime=runtime, llm=scripted("hi"))


class TestWrongTypes:
    def test_task_must_be_text(self, make: Make) -> None:
        task_center, _ = debate(make, "joe_biden")
        with pytest.raises(TypeError, match="task must be a str, not int"):
            task_center.send_task_request(42)

    def test_round_must_be_a_positive_int(self, make: Make) -> None:
        task_center, _ = debate(make, "joe_biden")
        with pytest.raises(TypeError, match="round must be an int >= 1"):
            task_center.step(round=0)

    def test_roles_must_be_names(self, make: Make) -> None:
        task_center, _ = debate(make, "joe_biden")
        with pytest.raises(TypeError, match="allowed_roles must be a role name or a list of role names"):
            task_center.step(allowed_roles=[1, 2])

    def test_add_agents_takes_a_list(self, make: Make) -> None:
        task_center = make(TaskCenter, "task_center")
        agent = make(RolePlay, "joe_biden", llm=scripted("hi"))
        with pytest.raises(TypeError, match="add_agents takes a list of agents"):
            task_center.add_agents(agent)

    def test_modes_cannot_be_mixed(self, runtime: object) -> None:
        """A plain agent cannot join a remote task center, nor the other way round."""
        from actorsim import create_component

        remote_center = create_component(TaskCenter, name="task_center", remote=True, runtime=runtime)
        with pytest.raises(TypeError, match="remote=False"):
            remote_center.add_agents([RolePlay("plain", llm=scripted("hi"))])
        plain_center = TaskCenter("plain_center", log_dir=None)
        remote_agent = create_component(RolePlay, name="remote", remote=True, runtime=runtime, llm=scripted("hi"))
        with pytest.raises(TypeError, match="remote=True"):
            plain_center.add_agents([remote_agent])


class TestBadConfig:
    def test_unknown_model_server(self, make: Make) -> None:
        """The error lists the model servers there are."""
        with pytest.raises(ValueError, match=r"model_server must be one of \['scripted', 'openai', 'dashscope'\]"):
            make(RolePlay, "joe_biden", llm={"model_server": "nope"})

    def test_unknown_config_key(self, make: Make) -> None:
        """A misspelt key is named, with the keys that exist."""
        with pytest.raises(ValueError, match=r"unknown key\(s\) \['replys'\]"):
            make(RolePlay, "joe_biden", llm={"model_server": "scripted", "replys": ["a"]})

    def test_an_agent_needs_a_model(self, make: Make) -> None:
        with pytest.raises(ValueError, match="'joe_biden' needs an llm config"):
            make(RolePlay, "joe_biden")

    def test_bad_human_input_mode(self, make: Make) -> None:
        with pytest.raises(ValueError, match="human_input_mode must be one of"):
            make(RolePlay, "user", human_input_mode="MAYBE")

    def test_an_unknown_tool_name_is_refused(self, make: Make) -> None:
        """function_list is not silently ignored: a name nobody registered is named."""
        with pytest.raises(ValueError, match="function_list: tool 'search': no tool is registered by that name"):
            make(RolePlay, "joe_biden", llm=scripted("hi"), function_list=["search"])

    def test_an_unknown_option_is_named_with_the_accepted_ones(self, make: Make) -> None:
        """A misspelt option fails at create_component, listing what the class takes."""
        expected = r"RolePlay does not take option\(s\) 'instructions'; it takes: .*instruction"
        with pytest.raises(TypeError, match=expected):
            make(RolePlay, "joe_biden", llm=scripted("hi"), instructions="Debate.")

    def test_unknown_transport(self) -> None:
        import actorsim

        with pytest.raises(ValueError, match="unknown transport 'carrier-pigeon'; choose one of local, thespian, ray"):
            actorsim.init(transport="carrier-pigeon")


IMPLICIT_RUN = """
import actorsim
from actorsim import TaskCenter, create_component

task_center = create_component(TaskCenter, name="tc", remote=True)  # no actorsim.init: an implicit run
print("implicit:", task_center.runtime.transport_name)
try:
    actorsim.init(transport="local")
except RuntimeError as error:
    print("refused:", error)
task_center.close()  # the implicit run has no actors left: an explicit init replaces it
runtime = actorsim.init(transport="local")
print("replaced:", runtime.transport_name, runtime is not task_center.runtime)
actorsim.shutdown()
"""


def test_an_implicit_run_follows_the_environment_and_gives_way_to_init(tmp_path: Path) -> None:
    """Without init, $ACTORSIM_TRANSPORT is used; init then says why it cannot replace a run with actors,
    and replaces it once it has none."""
    result = subprocess.run(
        [sys.executable, "-c", IMPLICIT_RUN], cwd=tmp_path, env={**os.environ, "ACTORSIM_TRANSPORT": "thespian"},
        capture_output=True, text=True, timeout=120, check=False,
    )
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0] == "implicit: thespian"
    assert lines[1].startswith(
        "refused: actorsim already runs an implicit 'thespian' run, started when a component was created with "
        "remote=True before actorsim.init"
    )
    assert "call actorsim.init(...) before creating components" in lines[1]
    assert lines[2] == "replaced: local True"
