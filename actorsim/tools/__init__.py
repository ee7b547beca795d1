"""Tools for agents: `function_list` entries, the registry of names, tool services.

See the README's "Tools" section. A tool runs in its agent's process unless
it is served by a `ToolService`.
"""

from actorsim._errors import ToolSpecError
from actorsim.tools._execute import ToolOutcome
from actorsim.tools._registry import register_tool
from actorsim.tools._resolve import resolve_tools
from actorsim.tools._runner import ToolAnswers, ToolRunner
from actorsim.tools._service import CallTool, ServiceRequest, ToolService
from actorsim.tools._spec import Tool, check_parameters, tool_from_callable

__all__ = [
    "CallTool",
    "ServiceRequest",
    "Tool",
    "ToolAnswers",
    "ToolOutcome",
    "ToolRunner",
    "ToolService",
    "ToolSpecError",
    "check_parameters",
    "register_tool",
    "resolve_tools",
    "tool_from_callable",
]
